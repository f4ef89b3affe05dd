//! A recursive-descent parser for the CQL subset in [`super::Statement`]. Statements Cassandra
//! accepts but the testbed does not implement are answered with an Invalid error naming them.

use super::lexer::{tokenize, Tok, Token};
use super::*;
use crate::error::CqlError;
use crate::types::CqlType;

pub fn parse(text: &str) -> Result<Parsed, CqlError> {
    let mut p = Parser {
        tokens: tokenize(text)?,
        pos: 0,
        marker_names: Vec::new(),
    };
    let statement = p.statement()?;
    while p.accept_sym(";") {}
    p.expect_eof()?;
    Ok(Parsed {
        statement,
        marker_names: p.marker_names,
    })
}

fn unsupported(what: &str) -> CqlError {
    CqlError::invalid(format!("{what} is not supported by the CQL testbed"))
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    marker_names: Vec<Option<String>>,
}

impl Parser {
    fn peek(&self) -> &Tok {
        &self.tokens[self.pos.min(self.tokens.len() - 1)].tok
    }

    fn peek_at(&self, offset: usize) -> &Tok {
        &self.tokens[(self.pos + offset).min(self.tokens.len() - 1)].tok
    }

    fn advance(&mut self) -> Tok {
        let t = self.peek().clone();
        if self.pos < self.tokens.len() - 1 {
            self.pos += 1;
        }
        t
    }

    fn error(&self, expected: &str) -> CqlError {
        let t = &self.tokens[self.pos.min(self.tokens.len() - 1)];
        CqlError::syntax(format!(
            "line {}:{} no viable alternative at input '{}' (expected {expected})",
            t.line,
            t.col,
            t.tok.describe()
        ))
    }

    fn is_kw(&self, kw: &str) -> bool {
        matches!(self.peek(), Tok::Ident(s) if s == kw)
    }

    fn is_kw_at(&self, offset: usize, kw: &str) -> bool {
        matches!(self.peek_at(offset), Tok::Ident(s) if s == kw)
    }

    fn accept_kw(&mut self, kw: &str) -> bool {
        if self.is_kw(kw) {
            self.advance();
            true
        } else {
            false
        }
    }

    fn expect_kw(&mut self, kw: &str) -> Result<(), CqlError> {
        if self.accept_kw(kw) {
            Ok(())
        } else {
            Err(self.error(&kw.to_uppercase()))
        }
    }

    fn accept_sym(&mut self, sym: &str) -> bool {
        if matches!(self.peek(), Tok::Sym(s) if *s == sym) {
            self.advance();
            true
        } else {
            false
        }
    }

    fn expect_sym(&mut self, sym: &str) -> Result<(), CqlError> {
        if self.accept_sym(sym) {
            Ok(())
        } else {
            Err(self.error(&format!("'{sym}'")))
        }
    }

    fn expect_eof(&mut self) -> Result<(), CqlError> {
        if matches!(self.peek(), Tok::Eof) {
            Ok(())
        } else {
            Err(self.error("end of statement"))
        }
    }

    fn ident(&mut self) -> Result<String, CqlError> {
        match self.peek().clone() {
            Tok::Ident(s) | Tok::QuotedIdent(s) => {
                self.advance();
                Ok(s)
            }
            _ => Err(self.error("an identifier")),
        }
    }

    fn qualified_name(&mut self) -> Result<QualifiedName, CqlError> {
        let first = self.ident()?;
        if self.accept_sym(".") {
            Ok(QualifiedName {
                keyspace: Some(first),
                name: self.ident()?,
            })
        } else {
            Ok(QualifiedName {
                keyspace: None,
                name: first,
            })
        }
    }

    fn if_not_exists(&mut self) -> Result<bool, CqlError> {
        if self.accept_kw("if") {
            self.expect_kw("not")?;
            self.expect_kw("exists")?;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    fn if_exists(&mut self) -> Result<bool, CqlError> {
        if self.accept_kw("if") {
            self.expect_kw("exists")?;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    fn statement(&mut self) -> Result<Statement, CqlError> {
        let Tok::Ident(first) = self.peek().clone() else {
            return Err(self.error("a statement"));
        };
        match first.as_str() {
            "select" => self.select().map(Statement::Select),
            "insert" => self.insert().map(Statement::Insert),
            "update" => self.update().map(Statement::Update),
            "delete" => self.delete().map(Statement::Delete),
            "begin" => self.batch(),
            "use" => {
                self.advance();
                Ok(Statement::Use(self.ident()?))
            }
            "truncate" => {
                self.advance();
                if !self.accept_kw("table") {
                    self.accept_kw("columnfamily");
                }
                Ok(Statement::Truncate(self.qualified_name()?))
            }
            "create" => self.create(),
            "drop" => self.drop(),
            "alter" => self.alter(),
            "describe" | "desc" => Err(unsupported("DESCRIBE")),
            "grant" | "revoke" | "list" => Err(unsupported("access control")),
            _ => Err(self.error("a statement")),
        }
    }

    fn create(&mut self) -> Result<Statement, CqlError> {
        self.expect_kw("create")?;
        if self.accept_kw("keyspace") || self.accept_kw("schema") {
            let if_not_exists = self.if_not_exists()?;
            let name = self.ident()?;
            self.expect_kw("with")?;
            let options = self.properties()?;
            return Ok(Statement::CreateKeyspace {
                name,
                if_not_exists,
                options,
            });
        }
        if self.accept_kw("table") || self.accept_kw("columnfamily") {
            return self.create_table();
        }
        let what = match self.peek() {
            Tok::Ident(s) if s == "custom" || s == "index" => "CREATE INDEX (secondary indexes)",
            Tok::Ident(s) if s == "materialized" => "CREATE MATERIALIZED VIEW",
            Tok::Ident(s) if s == "type" => "CREATE TYPE (user-defined types)",
            Tok::Ident(s) if s == "function" || s == "or" => "CREATE FUNCTION",
            Tok::Ident(s) if s == "aggregate" => "CREATE AGGREGATE",
            Tok::Ident(s) if s == "trigger" => "CREATE TRIGGER",
            Tok::Ident(s) if s == "role" || s == "user" => "CREATE ROLE/USER",
            _ => return Err(self.error("KEYSPACE or TABLE")),
        };
        Err(unsupported(what))
    }

    fn drop(&mut self) -> Result<Statement, CqlError> {
        self.expect_kw("drop")?;
        if self.accept_kw("keyspace") || self.accept_kw("schema") {
            let if_exists = self.if_exists()?;
            return Ok(Statement::DropKeyspace {
                name: self.ident()?,
                if_exists,
            });
        }
        if self.accept_kw("table") || self.accept_kw("columnfamily") {
            let if_exists = self.if_exists()?;
            return Ok(Statement::DropTable {
                name: self.qualified_name()?,
                if_exists,
            });
        }
        match self.peek() {
            Tok::Ident(s) => Err(unsupported(&format!("DROP {}", s.to_uppercase()))),
            _ => Err(self.error("KEYSPACE or TABLE")),
        }
    }

    fn alter(&mut self) -> Result<Statement, CqlError> {
        self.expect_kw("alter")?;
        if !(self.accept_kw("table") || self.accept_kw("columnfamily")) {
            return match self.peek() {
                Tok::Ident(s) => Err(unsupported(&format!("ALTER {}", s.to_uppercase()))),
                _ => Err(self.error("TABLE")),
            };
        }
        let name = self.qualified_name()?;
        let change = if self.accept_kw("add") {
            let mut columns = Vec::new();
            if self.accept_sym("(") {
                loop {
                    columns.push(self.column_def()?.0);
                    if !self.accept_sym(",") {
                        break;
                    }
                }
                self.expect_sym(")")?;
            } else {
                columns.push(self.column_def()?.0);
            }
            AlterTable::Add(columns)
        } else if self.accept_kw("drop") {
            let mut columns = Vec::new();
            if self.accept_sym("(") {
                loop {
                    columns.push(self.ident()?);
                    if !self.accept_sym(",") {
                        break;
                    }
                }
                self.expect_sym(")")?;
            } else {
                columns.push(self.ident()?);
            }
            if self.is_kw("using") {
                return Err(unsupported("ALTER TABLE ... DROP ... USING TIMESTAMP"));
            }
            AlterTable::Drop(columns)
        } else if self.accept_kw("with") {
            AlterTable::Options(self.properties()?)
        } else if self.is_kw("alter") {
            return Err(unsupported(
                "ALTER TABLE ... ALTER (changing a column type)",
            ));
        } else if self.is_kw("rename") {
            return Err(unsupported("ALTER TABLE ... RENAME"));
        } else {
            return Err(self.error("ADD, DROP or WITH"));
        };
        Ok(Statement::AlterTable { name, change })
    }

    /// `name = term (AND name = term)*`
    fn properties(&mut self) -> Result<Vec<(String, Term)>, CqlError> {
        let mut out = Vec::new();
        loop {
            let name = self.ident()?;
            self.expect_sym("=")?;
            out.push((name, self.term()?));
            if !self.accept_kw("and") {
                break;
            }
        }
        Ok(out)
    }

    fn cql_type(&mut self) -> Result<CqlType, CqlError> {
        let name = self.ident()?;
        match name.as_str() {
            "frozen" => {
                self.expect_sym("<")?;
                let inner = self.cql_type()?;
                self.expect_sym(">")?;
                if !inner.is_collection() {
                    return Err(CqlError::invalid(format!(
                        "frozen<> is only allowed on collections, tuples and user-defined types, not on {}",
                        inner.cql_name()
                    )));
                }
                Ok(inner.with_frozen(true))
            }
            "list" | "set" => {
                self.expect_sym("<")?;
                let element = self.nested_type()?;
                self.expect_sym(">")?;
                let element = Box::new(element);
                Ok(if name == "list" {
                    CqlType::List {
                        element,
                        frozen: false,
                    }
                } else {
                    CqlType::Set {
                        element,
                        frozen: false,
                    }
                })
            }
            "map" => {
                self.expect_sym("<")?;
                let key = self.nested_type()?;
                self.expect_sym(",")?;
                let value = self.nested_type()?;
                self.expect_sym(">")?;
                Ok(CqlType::Map {
                    key: Box::new(key),
                    value: Box::new(value),
                    frozen: false,
                })
            }
            "counter" => Err(unsupported("the counter type")),
            "duration" => Err(unsupported("the duration type")),
            "tuple" => Err(unsupported("the tuple type")),
            _ => CqlType::native(&name)
                .ok_or_else(|| unsupported(&format!("type '{name}' (user-defined types)"))),
        }
    }

    /// A type inside a collection, which Cassandra requires to be frozen if it is itself a
    /// collection.
    fn nested_type(&mut self) -> Result<CqlType, CqlError> {
        let ty = self.cql_type()?;
        if ty.is_multi_cell() {
            return Err(CqlError::invalid(
                "Non-frozen collections are not allowed inside collections: ".to_string()
                    + &ty.cql_name(),
            ));
        }
        Ok(ty)
    }

    /// A column definition; the flag says whether it carried an inline `PRIMARY KEY`.
    fn column_def(&mut self) -> Result<(ColumnDef, bool), CqlError> {
        let name = self.ident()?;
        let ty = self.cql_type()?;
        let is_static = self.accept_kw("static");
        let primary = if self.accept_kw("primary") {
            self.expect_kw("key")?;
            true
        } else {
            false
        };
        Ok((
            ColumnDef {
                name,
                ty,
                is_static,
            },
            primary,
        ))
    }

    fn create_table(&mut self) -> Result<Statement, CqlError> {
        let if_not_exists = self.if_not_exists()?;
        let name = self.qualified_name()?;
        self.expect_sym("(")?;
        let mut columns = Vec::new();
        let mut inline_pk = Vec::new();
        let mut key: Option<(Vec<String>, Vec<String>)> = None;
        loop {
            if self.is_kw("primary") && self.is_kw_at(1, "key") {
                self.advance();
                self.advance();
                self.expect_sym("(")?;
                let partition = if self.accept_sym("(") {
                    let mut cols = vec![self.ident()?];
                    while self.accept_sym(",") {
                        cols.push(self.ident()?);
                    }
                    self.expect_sym(")")?;
                    cols
                } else {
                    vec![self.ident()?]
                };
                let mut clustering = Vec::new();
                while self.accept_sym(",") {
                    clustering.push(self.ident()?);
                }
                self.expect_sym(")")?;
                if key.is_some() {
                    return Err(CqlError::invalid("Multiple PRIMARY KEYs specified"));
                }
                key = Some((partition, clustering));
            } else {
                let (def, primary) = self.column_def()?;
                if primary {
                    inline_pk.push(def.name.clone());
                }
                columns.push(def);
            }
            if !self.accept_sym(",") {
                break;
            }
            if matches!(self.peek(), Tok::Sym(")")) {
                break;
            }
        }
        self.expect_sym(")")?;
        let (partition_key, clustering) = match (key, inline_pk.len()) {
            (Some(_), n) if n > 0 => {
                return Err(CqlError::invalid("Multiple PRIMARY KEYs specified"))
            }
            (Some(k), _) => k,
            (None, 1) => (inline_pk, Vec::new()),
            (None, 0) => return Err(CqlError::invalid("No PRIMARY KEY specified")),
            (None, _) => return Err(CqlError::invalid("Multiple PRIMARY KEYs specified")),
        };
        let mut clustering_order = Vec::new();
        let mut options = Vec::new();
        if self.accept_kw("with") {
            loop {
                if self.accept_kw("clustering") {
                    self.expect_kw("order")?;
                    self.expect_kw("by")?;
                    self.expect_sym("(")?;
                    loop {
                        let col = self.ident()?;
                        let desc = if self.accept_kw("desc") {
                            true
                        } else {
                            self.accept_kw("asc");
                            false
                        };
                        clustering_order.push((col, desc));
                        if !self.accept_sym(",") {
                            break;
                        }
                    }
                    self.expect_sym(")")?;
                } else if self.is_kw("compact") {
                    return Err(unsupported("COMPACT STORAGE"));
                } else {
                    let name = self.ident()?;
                    self.expect_sym("=")?;
                    options.push((name, self.term()?));
                }
                if !self.accept_kw("and") {
                    break;
                }
            }
        }
        Ok(Statement::CreateTable(CreateTable {
            name,
            if_not_exists,
            columns,
            partition_key,
            clustering,
            clustering_order,
            options,
        }))
    }

    fn marker(&mut self, name: Option<String>) -> Term {
        self.marker_names.push(name);
        Term::Bind(self.marker_names.len() - 1)
    }

    fn term(&mut self) -> Result<Term, CqlError> {
        let tok = self.advance();
        Ok(match tok {
            Tok::Marker => self.marker(None),
            Tok::NamedMarker(n) => self.marker(Some(n)),
            Tok::Str(s) => Term::Literal(Literal::Str(s)),
            Tok::Int(s) => Term::Literal(Literal::Int(s)),
            Tok::Float(s) => Term::Literal(Literal::Float(s)),
            Tok::Uuid(s) => Term::Literal(Literal::Uuid(s)),
            Tok::Blob(b) => Term::Literal(Literal::Blob(b)),
            Tok::Sym("-") => match self.advance() {
                Tok::Int(s) => Term::Literal(Literal::Int(format!("-{s}"))),
                Tok::Float(s) => Term::Literal(Literal::Float(format!("-{s}"))),
                Tok::Ident(s) if s == "infinity" => Term::Literal(Literal::Infinity(true)),
                _ => {
                    self.pos -= 1;
                    return Err(self.error("a number after '-'"));
                }
            },
            Tok::Ident(s) => match s.as_str() {
                "true" => Term::Literal(Literal::Bool(true)),
                "false" => Term::Literal(Literal::Bool(false)),
                "null" => Term::Null,
                "nan" => Term::Literal(Literal::NaN),
                "infinity" => Term::Literal(Literal::Infinity(false)),
                _ if matches!(self.peek(), Tok::Sym("(")) => {
                    self.advance();
                    let mut args = Vec::new();
                    if !self.accept_sym(")") {
                        loop {
                            args.push(self.term()?);
                            if !self.accept_sym(",") {
                                break;
                            }
                        }
                        self.expect_sym(")")?;
                    }
                    Term::Function(s, args)
                }
                _ => {
                    self.pos -= 1;
                    return Err(self.error("a constant, bind marker or function call"));
                }
            },
            Tok::Sym("[") => {
                let mut items = Vec::new();
                if !self.accept_sym("]") {
                    loop {
                        items.push(self.term()?);
                        if !self.accept_sym(",") {
                            break;
                        }
                    }
                    self.expect_sym("]")?;
                }
                Term::List(items)
            }
            Tok::Sym("{") => {
                if self.accept_sym("}") {
                    return Ok(Term::Map(Vec::new()));
                }
                let first = self.term()?;
                if self.accept_sym(":") {
                    let mut entries = vec![(first, self.term()?)];
                    while self.accept_sym(",") {
                        let k = self.term()?;
                        self.expect_sym(":")?;
                        entries.push((k, self.term()?));
                    }
                    self.expect_sym("}")?;
                    Term::Map(entries)
                } else {
                    let mut items = vec![first];
                    while self.accept_sym(",") {
                        items.push(self.term()?);
                    }
                    self.expect_sym("}")?;
                    Term::Set(items)
                }
            }
            Tok::Sym("(") => return Err(unsupported("tuple literals and type casts")),
            _ => {
                self.pos -= 1;
                return Err(self.error("a term"));
            }
        })
    }

    fn using(&mut self, using: &mut Using) -> Result<(), CqlError> {
        if !self.accept_kw("using") {
            return Ok(());
        }
        loop {
            if self.accept_kw("ttl") {
                using.ttl = Some(self.term()?);
            } else if self.accept_kw("timestamp") {
                using.timestamp = Some(self.term()?);
            } else if self.is_kw("timeout") {
                return Err(unsupported("USING TIMEOUT"));
            } else {
                return Err(self.error("TTL or TIMESTAMP"));
            }
            if !self.accept_kw("and") {
                return Ok(());
            }
        }
    }

    fn relations(&mut self) -> Result<Vec<Relation>, CqlError> {
        let mut out = Vec::new();
        loop {
            if matches!(self.peek(), Tok::Sym("(")) {
                return Err(unsupported("multi-column relations"));
            }
            if self.is_kw("token") && matches!(self.peek_at(1), Tok::Sym("(")) {
                return Err(unsupported("token() restrictions"));
            }
            let column = self.ident()?;
            if matches!(self.peek(), Tok::Sym("[")) {
                return Err(unsupported("restrictions on collection elements"));
            }
            let op = match self.advance() {
                Tok::Sym("=") => Op::Eq,
                Tok::Sym("<") => Op::Lt,
                Tok::Sym("<=") => Op::Le,
                Tok::Sym(">") => Op::Gt,
                Tok::Sym(">=") => Op::Ge,
                Tok::Sym("!=") => Op::Ne,
                Tok::Ident(s) if s == "in" => Op::In,
                Tok::Ident(s) if s == "contains" => {
                    if self.accept_kw("key") {
                        Op::ContainsKey
                    } else {
                        Op::Contains
                    }
                }
                Tok::Ident(s) if s == "like" => return Err(unsupported("LIKE")),
                Tok::Ident(s) if s == "is" => return Err(unsupported("IS NOT NULL")),
                _ => {
                    self.pos -= 1;
                    return Err(self.error("a relation operator"));
                }
            };
            let value = if op == Op::In {
                if self.accept_sym("(") {
                    let mut items = Vec::new();
                    if !self.accept_sym(")") {
                        loop {
                            items.push(self.term()?);
                            if !self.accept_sym(",") {
                                break;
                            }
                        }
                        self.expect_sym(")")?;
                    }
                    Term::List(items)
                } else {
                    match self.advance() {
                        Tok::Marker => self.marker(None),
                        Tok::NamedMarker(n) => self.marker(Some(n)),
                        _ => {
                            self.pos -= 1;
                            return Err(self.error("'(' or a bind marker after IN"));
                        }
                    }
                }
            } else {
                self.term()?
            };
            out.push(Relation { column, op, value });
            if !self.accept_kw("and") {
                return Ok(out);
            }
        }
    }

    fn select(&mut self) -> Result<Select, CqlError> {
        self.expect_kw("select")?;
        if self.is_kw("json") {
            return Err(unsupported("SELECT JSON"));
        }
        let distinct = self.accept_kw("distinct");
        let items = if self.accept_sym("*") {
            None
        } else {
            let mut items = Vec::new();
            loop {
                items.push(self.select_item()?);
                if !self.accept_sym(",") {
                    break;
                }
            }
            Some(items)
        };
        self.expect_kw("from")?;
        let table = self.qualified_name()?;
        let relations = if self.accept_kw("where") {
            self.relations()?
        } else {
            Vec::new()
        };
        if self.is_kw("group") {
            return Err(unsupported("GROUP BY"));
        }
        let mut order_by = Vec::new();
        if self.accept_kw("order") {
            self.expect_kw("by")?;
            loop {
                let col = self.ident()?;
                let desc = if self.accept_kw("desc") {
                    true
                } else {
                    self.accept_kw("asc");
                    false
                };
                order_by.push((col, desc));
                if !self.accept_sym(",") {
                    break;
                }
            }
        }
        let mut per_partition_limit = None;
        if self.accept_kw("per") {
            self.expect_kw("partition")?;
            self.expect_kw("limit")?;
            per_partition_limit = Some(self.term()?);
        }
        let limit = if self.accept_kw("limit") {
            Some(self.term()?)
        } else {
            None
        };
        let allow_filtering = if self.accept_kw("allow") {
            self.expect_kw("filtering")?;
            true
        } else {
            false
        };
        if self.is_kw("bypass") {
            return Err(unsupported("BYPASS CACHE"));
        }
        Ok(Select {
            table,
            distinct,
            items,
            relations,
            order_by,
            per_partition_limit,
            limit,
            allow_filtering,
        })
    }

    fn select_item(&mut self) -> Result<SelectItem, CqlError> {
        let selector = match (self.peek().clone(), self.peek_at(1).clone()) {
            (Tok::Ident(f), Tok::Sym("(")) => {
                self.advance();
                self.advance();
                let selector = match f.as_str() {
                    "count" => {
                        if !(self.accept_sym("*")
                            || matches!(self.advance(), Tok::Int(n) if n == "1"))
                        {
                            return Err(unsupported("count() of a column (use count(*))"));
                        }
                        Selector::CountRows
                    }
                    "writetime" => Selector::WriteTime(self.ident()?),
                    "ttl" => Selector::Ttl(self.ident()?),
                    other => return Err(unsupported(&format!("the selector function {other}()"))),
                };
                self.expect_sym(")")?;
                selector
            }
            _ => Selector::Column(self.ident()?),
        };
        let alias = if self.accept_kw("as") {
            Some(self.ident()?)
        } else {
            None
        };
        Ok(SelectItem { selector, alias })
    }

    fn insert(&mut self) -> Result<Insert, CqlError> {
        self.expect_kw("insert")?;
        self.expect_kw("into")?;
        let table = self.qualified_name()?;
        if self.is_kw("json") {
            return Err(unsupported("INSERT JSON"));
        }
        self.expect_sym("(")?;
        let mut columns = vec![self.ident()?];
        while self.accept_sym(",") {
            columns.push(self.ident()?);
        }
        self.expect_sym(")")?;
        self.expect_kw("values")?;
        self.expect_sym("(")?;
        let mut values = vec![self.term()?];
        while self.accept_sym(",") {
            values.push(self.term()?);
        }
        self.expect_sym(")")?;
        let if_not_exists = self.if_not_exists()?;
        let mut using = Using::default();
        self.using(&mut using)?;
        Ok(Insert {
            table,
            columns,
            values,
            if_not_exists,
            using,
        })
    }

    /// The `WHERE …` and optional `IF EXISTS` that end an UPDATE or DELETE (`statement`).
    fn where_if_exists(&mut self, statement: &str) -> Result<(Vec<Relation>, bool), CqlError> {
        self.expect_kw("where")?;
        let relations = self.relations()?;
        let if_exists = match self.condition()? {
            None => false,
            Some(Condition::IfExists) => true,
            Some(Condition::IfNotExists) => {
                return Err(CqlError::syntax(format!(
                    "IF NOT EXISTS is not valid on {statement}"
                )))
            }
        };
        Ok((relations, if_exists))
    }

    fn condition(&mut self) -> Result<Option<Condition>, CqlError> {
        if !self.accept_kw("if") {
            return Ok(None);
        }
        if self.accept_kw("exists") {
            return Ok(Some(Condition::IfExists));
        }
        if self.accept_kw("not") {
            self.expect_kw("exists")?;
            return Ok(Some(Condition::IfNotExists));
        }
        Err(unsupported(
            "lightweight transactions with column conditions (only IF EXISTS / IF NOT EXISTS)",
        ))
    }

    fn update(&mut self) -> Result<Update, CqlError> {
        self.expect_kw("update")?;
        let table = self.qualified_name()?;
        let mut using = Using::default();
        self.using(&mut using)?;
        self.expect_kw("set")?;
        let mut assignments = Vec::new();
        loop {
            assignments.push(self.assignment()?);
            if !self.accept_sym(",") {
                break;
            }
        }
        let (relations, if_exists) = self.where_if_exists("UPDATE")?;
        Ok(Update {
            table,
            using,
            assignments,
            relations,
            if_exists,
        })
    }

    fn assignment(&mut self) -> Result<Assignment, CqlError> {
        let column = self.ident()?;
        if self.accept_sym("[") {
            let key = self.term()?;
            self.expect_sym("]")?;
            self.expect_sym("=")?;
            let value = self.term()?;
            return Ok(Assignment::SetElement { column, key, value });
        }
        if self.accept_sym(".") {
            return Err(unsupported("assigning user-defined type fields"));
        }
        self.expect_sym("=")?;
        let same_column = matches!(self.peek(), Tok::Ident(s) | Tok::QuotedIdent(s) if *s == column)
            && matches!(self.peek_at(1), Tok::Sym("+") | Tok::Sym("-"));
        if same_column {
            self.advance();
            let plus = matches!(self.advance(), Tok::Sym("+"));
            let value = self.term()?;
            return Ok(if plus {
                Assignment::Append { column, value }
            } else {
                Assignment::Remove { column, value }
            });
        }
        let value = self.term()?;
        if self.accept_sym("+") {
            let other = self.ident()?;
            if other != column {
                return Err(CqlError::invalid(format!(
                    "Only expressions of the form X = <value> + X are supported, not {column} = <value> + {other}"
                )));
            }
            return Ok(Assignment::Prepend { column, value });
        }
        Ok(Assignment::Set { column, value })
    }

    fn delete(&mut self) -> Result<Delete, CqlError> {
        self.expect_kw("delete")?;
        let mut targets = Vec::new();
        if !self.is_kw("from") {
            loop {
                let column = self.ident()?;
                if self.accept_sym("[") {
                    let key = self.term()?;
                    self.expect_sym("]")?;
                    targets.push(DeleteTarget::Element(column, key));
                } else {
                    targets.push(DeleteTarget::Column(column));
                }
                if !self.accept_sym(",") {
                    break;
                }
            }
        }
        self.expect_kw("from")?;
        let table = self.qualified_name()?;
        let mut using = Using::default();
        self.using(&mut using)?;
        if using.ttl.is_some() {
            return Err(CqlError::invalid("DELETE does not accept USING TTL"));
        }
        let (relations, if_exists) = self.where_if_exists("DELETE")?;
        Ok(Delete {
            table,
            targets,
            using,
            relations,
            if_exists,
        })
    }

    fn batch(&mut self) -> Result<Statement, CqlError> {
        self.expect_kw("begin")?;
        let kind = if self.accept_kw("unlogged") {
            BatchKind::Unlogged
        } else if self.accept_kw("counter") {
            BatchKind::Counter
        } else {
            self.accept_kw("logged");
            BatchKind::Logged
        };
        self.expect_kw("batch")?;
        let mut using = Using::default();
        self.using(&mut using)?;
        let mut statements = Vec::new();
        loop {
            while self.accept_sym(";") {}
            if self.accept_kw("apply") {
                self.expect_kw("batch")?;
                break;
            }
            let statement = match self.peek() {
                Tok::Ident(s) if s == "insert" => Statement::Insert(self.insert()?),
                Tok::Ident(s) if s == "update" => Statement::Update(self.update()?),
                Tok::Ident(s) if s == "delete" => Statement::Delete(self.delete()?),
                _ => return Err(self.error("INSERT, UPDATE, DELETE or APPLY BATCH")),
            };
            statements.push(statement);
        }
        Ok(Statement::Batch {
            kind,
            using,
            statements,
        })
    }
}
