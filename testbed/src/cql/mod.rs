//! The CQL statements the testbed understands: syntax tree, lexer and parser.

pub mod lexer;
pub mod parser;

use crate::types::CqlType;

pub use parser::parse;

/// `[keyspace.]name`.
#[derive(Debug, Clone, PartialEq)]
pub struct QualifiedName {
    pub keyspace: Option<String>,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Str(String),
    /// Digits with an optional leading minus.
    Int(String),
    Float(String),
    Bool(bool),
    Uuid(String),
    Blob(Vec<u8>),
    NaN,
    Infinity(bool),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Term {
    Null,
    Literal(Literal),
    /// A bind marker, by its position among the statement's markers.
    Bind(usize),
    List(Vec<Term>),
    Set(Vec<Term>),
    Map(Vec<(Term, Term)>),
    Function(String, Vec<Term>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
    Ne,
    In,
    Contains,
    ContainsKey,
}

impl Op {
    pub fn symbol(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Ne => "!=",
            Op::In => "IN",
            Op::Contains => "CONTAINS",
            Op::ContainsKey => "CONTAINS KEY",
        }
    }
}

/// `column op value`; for IN the value is a list term or a bind marker for the whole list.
#[derive(Debug, Clone, PartialEq)]
pub struct Relation {
    pub column: String,
    pub op: Op,
    pub value: Term,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Using {
    pub timestamp: Option<Term>,
    pub ttl: Option<Term>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    IfExists,
    IfNotExists,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Assignment {
    /// `c = v`
    Set { column: String, value: Term },
    /// `c = c + v`
    Append { column: String, value: Term },
    /// `c = v + c`
    Prepend { column: String, value: Term },
    /// `c = c - v`
    Remove { column: String, value: Term },
    /// `c[k] = v`
    SetElement {
        column: String,
        key: Term,
        value: Term,
    },
}

impl Assignment {
    pub fn column(&self) -> &str {
        match self {
            Assignment::Set { column, .. }
            | Assignment::Append { column, .. }
            | Assignment::Prepend { column, .. }
            | Assignment::Remove { column, .. }
            | Assignment::SetElement { column, .. } => column,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum DeleteTarget {
    Column(String),
    Element(String, Term),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Selector {
    Column(String),
    WriteTime(String),
    Ttl(String),
    CountRows,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SelectItem {
    pub selector: Selector,
    pub alias: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Select {
    pub table: QualifiedName,
    pub distinct: bool,
    /// `None` for `*`.
    pub items: Option<Vec<SelectItem>>,
    pub relations: Vec<Relation>,
    /// Column and whether it is descending.
    pub order_by: Vec<(String, bool)>,
    pub per_partition_limit: Option<Term>,
    pub limit: Option<Term>,
    pub allow_filtering: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Insert {
    pub table: QualifiedName,
    pub columns: Vec<String>,
    pub values: Vec<Term>,
    pub if_not_exists: bool,
    pub using: Using,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    pub table: QualifiedName,
    pub using: Using,
    pub assignments: Vec<Assignment>,
    pub relations: Vec<Relation>,
    pub if_exists: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Delete {
    pub table: QualifiedName,
    pub targets: Vec<DeleteTarget>,
    pub using: Using,
    pub relations: Vec<Relation>,
    pub if_exists: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ColumnDef {
    pub name: String,
    pub ty: CqlType,
    pub is_static: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CreateTable {
    pub name: QualifiedName,
    pub if_not_exists: bool,
    pub columns: Vec<ColumnDef>,
    pub partition_key: Vec<String>,
    pub clustering: Vec<String>,
    /// Column and whether it is descending, from `WITH CLUSTERING ORDER BY`.
    pub clustering_order: Vec<(String, bool)>,
    pub options: Vec<(String, Term)>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AlterTable {
    Add(Vec<ColumnDef>),
    Drop(Vec<String>),
    Options(Vec<(String, Term)>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum BatchKind {
    Logged,
    Unlogged,
    Counter,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Statement {
    Use(String),
    CreateKeyspace {
        name: String,
        if_not_exists: bool,
        options: Vec<(String, Term)>,
    },
    DropKeyspace {
        name: String,
        if_exists: bool,
    },
    CreateTable(CreateTable),
    DropTable {
        name: QualifiedName,
        if_exists: bool,
    },
    AlterTable {
        name: QualifiedName,
        change: AlterTable,
    },
    Truncate(QualifiedName),
    Select(Select),
    Insert(Insert),
    Update(Update),
    Delete(Delete),
    Batch {
        kind: BatchKind,
        using: Using,
        statements: Vec<Statement>,
    },
}

/// A parsed statement and the names of its bind markers (`None` for `?`).
#[derive(Debug, Clone)]
pub struct Parsed {
    pub statement: Statement,
    pub marker_names: Vec<Option<String>>,
}
