//! A writer schema compiled, once, into what decoding one of its bodies takes: per writer
//! field, in the writer's order, either "read this into `UserRecord` field k, converted like
//! this" or "skip a value of this type". Decoding then reads the body's bytes straight into the
//! record, with no `apache_avro::types::Value` in between and no lookup by field name.
//!
//! The conversions are exactly [`promote`](super::fields::promote)'s, applied to the value
//! `apache_avro` would have read with the writer schema; the tests compare both on random users.

use std::collections::HashMap;

use apache_avro::schema::{InnerDecimalSchema, Name, ResolvedSchema, UuidSchema};
use apache_avro::Schema;

use super::binary::{BodyProblem, Input, ReadError, ReadResult};
use super::fields::{assign, empty_record, optional_text, Field, Kind, Typed, ValueProblem};
use crate::model::UserRecord;

/// How deeply values may nest before a body is refused: a recursive writer type must not
/// overflow the stack on a crafted body.
const MAX_DEPTH: usize = 64;

/// Index of a [`Skip`] node in [`Plan::nodes`].
type NodeId = usize;

/// How to read past one value of a writer type. Named types are compiled once and referred to
/// by index, so recursive types are finite here.
#[derive(Debug, Clone)]
enum Skip {
    /// Zero bytes: `null`, an empty record, a `fixed` of size 0.
    Nothing,
    Boolean,
    Long,
    Int,
    /// `float` (4), `double` (8), `fixed`.
    Fixed(usize),
    Bytes,
    String,
    Enum(usize),
    Array(NodeId),
    Map(NodeId),
    Record(Vec<NodeId>),
    Union(Vec<NodeId>),
}

/// How a writer value becomes the value of the `UserRecord` field it feeds.
#[derive(Debug, Clone, Copy)]
enum Leaf {
    Null,
    String,
    /// Writer `bytes` read as text: invalid UTF-8 is a value problem, not a body problem.
    BytesAsString,
    IntAs(Number),
    LongAs(Number),
    FloatAsDouble,
    Double,
    /// A writer type the field cannot hold: read past it, then report the mismatch.
    Mismatch {
        node: NodeId,
        found: &'static str,
    },
}

/// The numeric kinds an int or long writer value may be promoted to.
#[derive(Debug, Clone, Copy)]
enum Number {
    Long,
    Double,
    TimestampMicros,
}

#[derive(Debug, Clone)]
enum Source {
    Plain(Leaf),
    /// The writer's union: one leaf per branch.
    Union(Box<[Leaf]>),
}

#[derive(Debug, Clone)]
enum Step {
    Skip(NodeId),
    /// A writer `["null", "string"]` (in either order) read into an `Option<String>` field:
    /// most fields of every schema version, so they skip [`Typed`] and [`assign`].
    OptionalText {
        field: Field,
        string_branch: usize,
    },
    Fill {
        field: Field,
        source: Source,
    },
}

/// The compiled resolution of one writer schema against the reader schema.
#[derive(Debug)]
pub(crate) struct Plan {
    /// Per writer field, in the writer's order.
    steps: Vec<Step>,
    /// The writer field names, for errors.
    names: Vec<String>,
    /// Reader fields the writer lacks, with the reader's default already converted.
    defaults: Vec<(Field, Typed)>,
    nodes: Vec<Skip>,
    /// Whether the writer or a default provides the required `id`.
    fills_id: bool,
}

/// Why a body could not be decoded with a [`Plan`].
#[derive(Debug)]
pub(crate) enum PlanError {
    /// The body ended inside the named writer field.
    Truncated {
        field: String,
    },
    Invalid {
        field: String,
        problem: BodyProblem,
    },
    TrailingBytes {
        count: usize,
    },
    Value {
        field: Field,
        problem: ValueProblem,
    },
}

impl Plan {
    /// Compiles `writer` (a record schema) for the reader fields it feeds: `targets[i]` is the
    /// `UserRecord` field writer field `i` fills, if any. Returns a message on a writer type
    /// the plan cannot follow.
    pub(crate) fn new(
        writer: &Schema,
        targets: &[Option<Field>],
        defaults: Vec<(Field, Typed)>,
    ) -> Result<Self, String> {
        let Schema::Record(record) = writer else {
            return Err("the writer schema is not a record".to_owned());
        };
        let resolved = ResolvedSchema::try_from(writer)
            .map_err(|error| format!("the writer schema's names do not resolve: {error}"))?;
        let mut compiler = Compiler {
            names: resolved.get_names(),
            named: HashMap::new(),
            nodes: Vec::new(),
        };
        let mut steps = Vec::with_capacity(record.fields.len());
        for (field, target) in record.fields.iter().zip(targets) {
            steps.push(match target {
                None => Step::Skip(compiler.node(&field.schema)?),
                Some(target) => match optional_text_branch(target.kind(), &field.schema) {
                    Some(string_branch) => Step::OptionalText {
                        field: *target,
                        string_branch,
                    },
                    None => Step::Fill {
                        field: *target,
                        source: compiler.source(target.kind(), &field.schema)?,
                    },
                },
            });
        }
        let fills_id = targets.contains(&Some(Field::Id))
            || defaults.iter().any(|(field, _)| *field == Field::Id);
        Ok(Self {
            steps,
            names: record.fields.iter().map(|f| f.name.clone()).collect(),
            defaults,
            nodes: compiler.nodes,
            fills_id,
        })
    }

    /// Reads one complete body into a record.
    pub(crate) fn decode(&self, body: &[u8]) -> Result<UserRecord, PlanError> {
        let mut input = Input::new(body);
        let mut record = empty_record();
        // A value problem is reported only once the whole body proved well-formed.
        let mut value_problem = None;
        for (index, step) in self.steps.iter().enumerate() {
            let read = match step {
                Step::Skip(node) => self.skip(&mut input, *node, 0),
                &Step::OptionalText {
                    field,
                    string_branch,
                } => read_optional_text(&mut input, string_branch).map(|text| {
                    // Always a slot: the step is compiled only for `Option<String>` fields.
                    if let Some(slot) = optional_text(&mut record, field) {
                        *slot = text;
                    }
                }),
                Step::Fill { field, source } => self
                    .fill(&mut input, &mut record, *field, source)
                    .map(|outcome| {
                        if let Err(problem) = outcome {
                            value_problem.get_or_insert((*field, problem));
                        }
                    }),
            };
            if let Err(error) = read {
                let field = self.names[index].clone();
                return Err(match error {
                    ReadError::Truncated => PlanError::Truncated { field },
                    ReadError::Invalid(problem) => PlanError::Invalid { field, problem },
                });
            }
        }
        if input.remaining() > 0 {
            return Err(PlanError::TrailingBytes {
                count: input.remaining(),
            });
        }
        for (field, default) in &self.defaults {
            if let Err(problem) = assign(&mut record, *field, default.clone()) {
                value_problem.get_or_insert((*field, problem));
            }
        }
        if !self.fills_id {
            value_problem.get_or_insert((Field::Id, ValueProblem::RequiredNull));
        }
        match value_problem {
            Some((field, problem)) => Err(PlanError::Value { field, problem }),
            None => Ok(record),
        }
    }

    /// Reads one writer value into `field`; the inner result is a value the field cannot hold.
    #[inline]
    fn fill(
        &self,
        input: &mut Input<'_>,
        record: &mut UserRecord,
        field: Field,
        source: &Source,
    ) -> ReadResult<Result<(), ValueProblem>> {
        let leaf = match source {
            Source::Plain(leaf) => *leaf,
            Source::Union(branches) => branches[input.branch(branches.len())?],
        };
        let typed = match leaf {
            Leaf::Null => Typed::Null,
            Leaf::String => Typed::String(input.str()?.to_owned()),
            Leaf::BytesAsString => match std::str::from_utf8(input.bytes()?) {
                Ok(text) => Typed::String(text.to_owned()),
                Err(_) => return Ok(Err(ValueProblem::NotUtf8)),
            },
            Leaf::IntAs(number) => widen(i64::from(input.int()?), number),
            Leaf::LongAs(number) => widen(input.long()?, number),
            Leaf::FloatAsDouble => Typed::Double(f64::from(input.float()?)),
            Leaf::Double => Typed::Double(input.double()?),
            Leaf::Mismatch { node, found } => {
                self.skip(input, node, 0)?;
                return Ok(Err(ValueProblem::WrongType {
                    expected: super::fields::expected_name(field.kind()),
                    found,
                }));
            }
        };
        Ok(assign(record, field, typed))
    }

    fn skip(&self, input: &mut Input<'_>, node: NodeId, depth: usize) -> ReadResult<()> {
        if depth > MAX_DEPTH {
            return Err(BodyProblem::TooDeep(MAX_DEPTH).into());
        }
        match &self.nodes[node] {
            Skip::Nothing => {}
            Skip::Boolean => {
                input.boolean()?;
            }
            Skip::Long => {
                input.long()?;
            }
            Skip::Int => {
                input.int()?;
            }
            Skip::Fixed(size) => {
                input.take(*size)?;
            }
            Skip::Bytes => {
                input.bytes()?;
            }
            Skip::String => {
                input.str()?;
            }
            Skip::Enum(symbols) => {
                let index = input.long()?;
                if !usize::try_from(index).is_ok_and(|i| i < *symbols) {
                    return Err(BodyProblem::EnumSymbol {
                        index,
                        symbols: *symbols,
                    }
                    .into());
                }
            }
            Skip::Array(items) => self.skip_blocks(input, false, *items, depth)?,
            Skip::Map(values) => self.skip_blocks(input, true, *values, depth)?,
            Skip::Record(fields) => {
                for field in fields {
                    self.skip(input, *field, depth + 1)?;
                }
            }
            Skip::Union(branches) => {
                let branch = branches[input.branch(branches.len())?];
                self.skip(input, branch, depth + 1)?;
            }
        }
        Ok(())
    }

    /// Array or map blocks until the empty one. An item of zero bytes is not looped over: a
    /// crafted count of 2^62 nulls must not take forever. Every other item takes at least a
    /// byte, so the input's end bounds the loop.
    fn skip_blocks(
        &self,
        input: &mut Input<'_>,
        with_keys: bool,
        item: NodeId,
        depth: usize,
    ) -> ReadResult<()> {
        let zero_width = !with_keys && matches!(self.nodes[item], Skip::Nothing);
        loop {
            let count = input.block_count()?;
            if count == 0 {
                return Ok(());
            }
            if zero_width {
                continue;
            }
            if count > input.remaining() as u64 {
                return Err(ReadError::Truncated);
            }
            for _ in 0..count {
                if with_keys {
                    input.str()?;
                }
                self.skip(input, item, depth + 1)?;
            }
        }
    }
}

/// The branch holding the string when `schema` is a `["null", "string"]` union in either order
/// and `kind` an optional string.
fn optional_text_branch(kind: Kind, schema: &Schema) -> Option<usize> {
    let Schema::Union(union) = schema else {
        return None;
    };
    match (kind, union.variants()) {
        (Kind::OptionalString, [Schema::Null, Schema::String]) => Some(1),
        (Kind::OptionalString, [Schema::String, Schema::Null]) => Some(0),
        _ => None,
    }
}

#[inline]
fn read_optional_text(input: &mut Input<'_>, string_branch: usize) -> ReadResult<Option<String>> {
    Ok(if input.branch(2)? == string_branch {
        Some(input.str()?.to_owned())
    } else {
        None
    })
}

fn widen(value: i64, number: Number) -> Typed {
    match number {
        Number::Long => Typed::Long(value),
        // Avro's int/long → double promotion is lossy for large longs by definition.
        Number::Double => Typed::Double(value as f64),
        Number::TimestampMicros => Typed::TimestampMicros(value),
    }
}

struct Compiler<'s> {
    names: &'s HashMap<Name, &'s Schema>,
    /// Named types already compiled (or being compiled: recursion ends here).
    named: HashMap<Name, NodeId>,
    nodes: Vec<Skip>,
}

impl Compiler<'_> {
    fn push(&mut self, skip: Skip) -> NodeId {
        self.nodes.push(skip);
        self.nodes.len() - 1
    }

    fn node(&mut self, schema: &Schema) -> Result<NodeId, String> {
        let skip = match schema {
            Schema::Null => Skip::Nothing,
            Schema::Boolean => Skip::Boolean,
            Schema::Int | Schema::Date | Schema::TimeMillis => Skip::Int,
            Schema::Long
            | Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos => Skip::Long,
            Schema::Float => Skip::Fixed(4),
            Schema::Double => Skip::Fixed(8),
            Schema::Bytes
            | Schema::BigDecimal
            | Schema::Uuid(UuidSchema::Bytes)
            | Schema::Decimal(apache_avro::schema::DecimalSchema {
                inner: InnerDecimalSchema::Bytes,
                ..
            }) => Skip::Bytes,
            Schema::String | Schema::Uuid(UuidSchema::String) => Skip::String,
            Schema::Fixed(fixed)
            | Schema::Uuid(UuidSchema::Fixed(fixed))
            | Schema::Duration(fixed)
            | Schema::Decimal(apache_avro::schema::DecimalSchema {
                inner: InnerDecimalSchema::Fixed(fixed),
                ..
            }) => {
                if fixed.size == 0 {
                    Skip::Nothing
                } else {
                    Skip::Fixed(fixed.size)
                }
            }
            Schema::Enum(enumeration) => Skip::Enum(enumeration.symbols.len()),
            Schema::Array(array) => {
                let items = self.node(&array.items)?;
                Skip::Array(items)
            }
            Schema::Map(map) => {
                let values = self.node(&map.types)?;
                Skip::Map(values)
            }
            Schema::Union(union) => {
                let branches = union
                    .variants()
                    .iter()
                    .map(|branch| self.node(branch))
                    .collect::<Result<_, _>>()?;
                Skip::Union(branches)
            }
            Schema::Record(record) => {
                if let Some(&id) = self.named.get(&record.name) {
                    return Ok(id);
                }
                // Reserved before the fields, so a field referring back to this record finds it.
                let id = self.push(Skip::Nothing);
                self.named.insert(record.name.clone(), id);
                let fields = record
                    .fields
                    .iter()
                    .map(|field| self.node(&field.schema))
                    .collect::<Result<Vec<_>, _>>()?;
                if fields
                    .iter()
                    .any(|&field| !matches!(self.nodes[field], Skip::Nothing))
                {
                    self.nodes[id] = Skip::Record(fields);
                }
                return Ok(id);
            }
            Schema::Ref { name } => {
                if let Some(&id) = self.named.get(name) {
                    return Ok(id);
                }
                let named = *self
                    .names
                    .get(name)
                    .ok_or_else(|| format!("the writer refers to an unknown type `{name}`"))?;
                return self.node(named);
            }
        };
        Ok(self.push(skip))
    }

    fn source(&mut self, kind: Kind, schema: &Schema) -> Result<Source, String> {
        Ok(match schema {
            Schema::Union(union) => Source::Union(
                union
                    .variants()
                    .iter()
                    .map(|branch| self.leaf(kind, branch))
                    .collect::<Result<_, _>>()?,
            ),
            plain => Source::Plain(self.leaf(kind, plain)?),
        })
    }

    /// The conversion of [`promote`](super::fields::promote) for a value of this writer type.
    fn leaf(&mut self, kind: Kind, schema: &Schema) -> Result<Leaf, String> {
        let string = matches!(kind, Kind::RequiredString | Kind::OptionalString);
        Ok(match (kind, schema) {
            (_, Schema::Null) => Leaf::Null,
            (_, Schema::String) if string => Leaf::String,
            (_, Schema::Bytes) if string => Leaf::BytesAsString,
            (Kind::OptionalLong, Schema::Long) => Leaf::LongAs(Number::Long),
            (Kind::OptionalLong, Schema::Int) => Leaf::IntAs(Number::Long),
            (Kind::OptionalDouble, Schema::Double) => Leaf::Double,
            (Kind::OptionalDouble, Schema::Float) => Leaf::FloatAsDouble,
            (Kind::OptionalDouble, Schema::Long) => Leaf::LongAs(Number::Double),
            (Kind::OptionalDouble, Schema::Int) => Leaf::IntAs(Number::Double),
            (Kind::OptionalTimestampMicros, Schema::Long | Schema::TimestampMicros) => {
                Leaf::LongAs(Number::TimestampMicros)
            }
            (Kind::OptionalTimestampMicros, Schema::Int) => Leaf::IntAs(Number::TimestampMicros),
            (_, other) => Leaf::Mismatch {
                node: self.node(other)?,
                found: schema_name(other),
            },
        })
    }
}

/// What `apache_avro` would call a value of this writer type (see `fields::value_name`).
fn schema_name(schema: &Schema) -> &'static str {
    match schema {
        Schema::Null => "null",
        Schema::Boolean => "boolean",
        Schema::Int => "int",
        Schema::Long => "long",
        Schema::Float => "float",
        Schema::Double => "double",
        Schema::Bytes => "bytes",
        Schema::String => "string",
        Schema::Fixed(_) => "fixed",
        Schema::Enum(_) => "enum",
        Schema::Union(_) => "union",
        Schema::Array(_) => "array",
        Schema::Map(_) => "map",
        Schema::Record(_) | Schema::Ref { .. } => "record",
        Schema::TimestampMicros => "timestamp-micros",
        Schema::TimestampMillis => "timestamp-millis",
        Schema::TimestampNanos => "timestamp-nanos",
        Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros
        | Schema::LocalTimestampNanos => "local-timestamp",
        Schema::Date => "date",
        Schema::TimeMillis | Schema::TimeMicros => "time",
        Schema::Uuid(_) => "uuid",
        Schema::Decimal(_) | Schema::BigDecimal => "decimal",
        Schema::Duration(_) => "duration",
    }
}
