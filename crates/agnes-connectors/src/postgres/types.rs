//! PostgreSQL column types as Arrow (and so parquet, and so DuckDB) types, and the decoding
//! of PostgreSQL's binary wire format into Arrow builders.
//!
//! The mapping (ARCHITECTURE.md lists it too):
//!
//! | PostgreSQL | parquet / DuckDB |
//! |---|---|
//! | `bool` | BOOLEAN |
//! | `int2`, `int4`, `int8`, `oid` | SMALLINT, INTEGER, BIGINT, BIGINT |
//! | `float4`, `float8` | FLOAT, DOUBLE |
//! | `numeric(p,s)` (p ≤ 38) | DECIMAL(p,s) |
//! | `numeric` without a precision | DECIMAL(38,9); a value with more than 9 decimals or 29 integer digits fails the sync naming the column (never a silent float) |
//! | `text`, `varchar`, `char`, `name`, enums, `citext`-like text types | VARCHAR |
//! | `json`, `jsonb` | VARCHAR (the JSON text; DuckDB's JSON functions read it) |
//! | `uuid` | VARCHAR (canonical text; `::UUID` in DuckDB) |
//! | `interval` | VARCHAR in DuckDB's interval syntax (`::INTERVAL` in DuckDB): parquet has no microsecond interval |
//! | `bytea` | BLOB |
//! | `date` | DATE |
//! | `time` | TIME |
//! | `timestamp` | TIMESTAMP (µs) |
//! | `timestamptz` | TIMESTAMP WITH TIME ZONE (µs, UTC) |
//! | one-dimensional arrays of the above | LIST |
//! | domains | their base type |
//!
//! Anything else (geometric types, ranges, `timetz`, `money`, multi-dimensional arrays,
//! infinite dates) fails the sync with the column's name; the last good parquet stays.

use arrow_array::builder::{
    ArrayBuilder, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder, Float64Builder,
    Int16Builder, Int32Builder, Int64Builder, ListBuilder, StringBuilder, Time64MicrosecondBuilder,
    TimestampMicrosecondBuilder,
};
use arrow_schema::{DataType, Field, TimeUnit};
use postgres::types::{Kind as PgKind, Type};
use std::sync::Arc;

/// Microseconds and days between 1970-01-01 (Arrow) and 2000-01-01 (PostgreSQL).
const EPOCH_SHIFT_MICROS: i64 = 946_684_800_000_000;
const EPOCH_SHIFT_DAYS: i32 = 10_957;
/// The scale of `numeric` columns declared without one.
pub const UNBOUNDED_NUMERIC_SCALE: i8 = 9;

/// How one column is decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Bool,
    I16,
    I32,
    I64,
    Oid,
    F32,
    F64,
    Numeric { precision: u8, scale: i8 },
    Text,
    Jsonb,
    Uuid,
    Interval,
    Bytes,
    Date,
    Time,
    Timestamp,
    TimestampTz,
    List(Box<Kind>),
}

impl Kind {
    /// The decoding of `ty`; `typmod` is the column's type modifier (`numeric(p,s)`), -1
    /// when unknown. `Err` says what the type is, for the caller to name the column.
    pub fn of(ty: &Type, typmod: i32) -> Result<Kind, String> {
        match ty.kind() {
            PgKind::Enum(_) => return Ok(Kind::Text),
            PgKind::Domain(base) => return Kind::of(base, typmod),
            PgKind::Array(element) => {
                let inner = Kind::of(element, typmod)?;
                if matches!(inner, Kind::List(_)) {
                    return Err(format!("{} (arrays of arrays)", ty.name()));
                }
                return Ok(Kind::List(Box::new(inner)));
            }
            _ => {}
        }
        Ok(match *ty {
            Type::BOOL => Kind::Bool,
            Type::INT2 => Kind::I16,
            Type::INT4 => Kind::I32,
            Type::INT8 => Kind::I64,
            Type::OID => Kind::Oid,
            Type::FLOAT4 => Kind::F32,
            Type::FLOAT8 => Kind::F64,
            Type::NUMERIC => match numeric_typmod(typmod) {
                Some((precision, scale)) if precision <= 38 => Kind::Numeric { precision, scale },
                Some((precision, scale)) => return Err(format!("numeric({precision},{scale}) (more than 38 digits)")),
                None => Kind::Numeric { precision: 38, scale: UNBOUNDED_NUMERIC_SCALE },
            },
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::CHAR | Type::JSON | Type::XML => Kind::Text,
            Type::JSONB => Kind::Jsonb,
            Type::UUID => Kind::Uuid,
            Type::INTERVAL => Kind::Interval,
            Type::BYTEA => Kind::Bytes,
            Type::DATE => Kind::Date,
            Type::TIME => Kind::Time,
            Type::TIMESTAMP => Kind::Timestamp,
            Type::TIMESTAMPTZ => Kind::TimestampTz,
            // Extension text types (citext…) travel as text in binary COPY too.
            _ if ty.name() == "citext" => Kind::Text,
            _ => return Err(ty.name().to_string()),
        })
    }

    pub fn data_type(&self) -> DataType {
        match self {
            Kind::Bool => DataType::Boolean,
            Kind::I16 => DataType::Int16,
            Kind::I32 => DataType::Int32,
            Kind::I64 | Kind::Oid => DataType::Int64,
            Kind::F32 => DataType::Float32,
            Kind::F64 => DataType::Float64,
            Kind::Numeric { precision, scale } => DataType::Decimal128(*precision, *scale),
            Kind::Text | Kind::Jsonb | Kind::Uuid | Kind::Interval => DataType::Utf8,
            Kind::Bytes => DataType::Binary,
            Kind::Date => DataType::Date32,
            Kind::Time => DataType::Time64(TimeUnit::Microsecond),
            Kind::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            Kind::TimestampTz => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            Kind::List(inner) => DataType::List(Arc::new(Field::new("item", inner.data_type(), true))),
        }
    }

    /// The DuckDB type an analyst sees.
    pub fn duckdb_type(&self) -> String {
        match self {
            Kind::Bool => "BOOLEAN".into(),
            Kind::I16 => "SMALLINT".into(),
            Kind::I32 => "INTEGER".into(),
            Kind::I64 | Kind::Oid => "BIGINT".into(),
            Kind::F32 => "FLOAT".into(),
            Kind::F64 => "DOUBLE".into(),
            Kind::Numeric { precision, scale } => format!("DECIMAL({precision},{scale})"),
            Kind::Text | Kind::Jsonb | Kind::Uuid | Kind::Interval => "VARCHAR".into(),
            Kind::Bytes => "BLOB".into(),
            Kind::Date => "DATE".into(),
            Kind::Time => "TIME".into(),
            Kind::Timestamp => "TIMESTAMP".into(),
            Kind::TimestampTz => "TIMESTAMP WITH TIME ZONE".into(),
            Kind::List(inner) => format!("{}[]", inner.duckdb_type()),
        }
    }

    /// An empty builder for this kind.
    pub fn builder(&self, capacity: usize) -> Box<dyn ArrayBuilder> {
        match self {
            Kind::Numeric { precision, scale } => Box::new(
                Decimal128Builder::with_capacity(capacity)
                    .with_precision_and_scale(*precision, *scale)
                    .expect("precision ≤ 38 was checked"),
            ),
            Kind::TimestampTz => Box::new(TimestampMicrosecondBuilder::with_capacity(capacity).with_timezone("UTC")),
            Kind::List(inner) => Box::new(ListBuilder::new(inner.builder(capacity)).with_field(Field::new(
                "item",
                inner.data_type(),
                true,
            ))),
            other => arrow_array::builder::make_builder(&other.data_type(), capacity),
        }
    }
}

/// `(precision, scale)` of a `numeric(p,s)` type modifier.
fn numeric_typmod(typmod: i32) -> Option<(u8, i8)> {
    if typmod < 4 {
        return None;
    }
    let t = typmod - 4;
    Some((((t >> 16) & 0xffff) as u8, (t & 0xffff) as i16 as i8))
}

/// A value that cannot be decoded as its column says.
#[derive(Debug, PartialEq)]
pub struct DecodeError(pub String);

fn need(bytes: &[u8], want: usize, what: &str) -> Result<(), DecodeError> {
    if bytes.len() < want {
        return Err(DecodeError(format!("a {what} value of {} bytes", bytes.len())));
    }
    Ok(())
}

fn be_i16(b: &[u8]) -> i16 {
    i16::from_be_bytes([b[0], b[1]])
}
fn be_i32(b: &[u8]) -> i32 {
    i32::from_be_bytes([b[0], b[1], b[2], b[3]])
}
fn be_i64(b: &[u8]) -> i64 {
    i64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

fn downcast<T: 'static>(b: &mut dyn ArrayBuilder) -> &mut T {
    b.as_any_mut().downcast_mut::<T>().expect("the builder was made for this kind")
}

/// Append one value (`None` = NULL) in PostgreSQL's binary format to `builder`, which
/// [`Kind::builder`] made for `kind`.
pub fn append(kind: &Kind, builder: &mut dyn ArrayBuilder, value: Option<&[u8]>) -> Result<(), DecodeError> {
    let Some(v) = value else {
        append_null(kind, builder);
        return Ok(());
    };
    match kind {
        Kind::Bool => {
            need(v, 1, "bool")?;
            downcast::<BooleanBuilder>(builder).append_value(v[0] != 0)
        }
        Kind::I16 => {
            need(v, 2, "int2")?;
            downcast::<Int16Builder>(builder).append_value(be_i16(v))
        }
        Kind::I32 => {
            need(v, 4, "int4")?;
            downcast::<Int32Builder>(builder).append_value(be_i32(v))
        }
        Kind::I64 => {
            need(v, 8, "int8")?;
            downcast::<Int64Builder>(builder).append_value(be_i64(v))
        }
        Kind::Oid => {
            need(v, 4, "oid")?;
            downcast::<Int64Builder>(builder).append_value(be_i32(v) as u32 as i64)
        }
        Kind::F32 => {
            need(v, 4, "float4")?;
            downcast::<Float32Builder>(builder).append_value(f32::from_bits(be_i32(v) as u32))
        }
        Kind::F64 => {
            need(v, 8, "float8")?;
            downcast::<Float64Builder>(builder).append_value(f64::from_bits(be_i64(v) as u64))
        }
        Kind::Numeric { scale, .. } => downcast::<Decimal128Builder>(builder).append_value(numeric(v, *scale)?),
        Kind::Text => downcast::<StringBuilder>(builder).append_value(text(v)?),
        // Version byte 1, then the JSON text.
        Kind::Jsonb => downcast::<StringBuilder>(builder).append_value(text(v.get(1..).unwrap_or_default())?),
        Kind::Uuid => {
            need(v, 16, "uuid")?;
            downcast::<StringBuilder>(builder).append_value(uuid_text(v))
        }
        Kind::Interval => {
            need(v, 16, "interval")?;
            downcast::<StringBuilder>(builder).append_value(interval_text(v))
        }
        Kind::Bytes => downcast::<BinaryBuilder>(builder).append_value(v),
        Kind::Date => {
            need(v, 4, "date")?;
            let days = be_i32(v);
            if days == i32::MAX || days == i32::MIN {
                return Err(DecodeError("an infinite date".into()));
            }
            let days = days.checked_add(EPOCH_SHIFT_DAYS).ok_or_else(|| DecodeError("a date out of range".into()))?;
            downcast::<Date32Builder>(builder).append_value(days)
        }
        Kind::Time => {
            need(v, 8, "time")?;
            downcast::<Time64MicrosecondBuilder>(builder).append_value(be_i64(v))
        }
        Kind::Timestamp | Kind::TimestampTz => {
            need(v, 8, "timestamp")?;
            let micros = be_i64(v);
            if micros == i64::MAX || micros == i64::MIN {
                return Err(DecodeError("an infinite timestamp".into()));
            }
            downcast::<TimestampMicrosecondBuilder>(builder).append_value(micros + EPOCH_SHIFT_MICROS)
        }
        Kind::List(inner) => {
            let b = downcast::<ListBuilder<Box<dyn ArrayBuilder>>>(builder);
            array(inner, b.values().as_mut(), v)?;
            b.append(true);
        }
    }
    Ok(())
}

fn append_null(kind: &Kind, builder: &mut dyn ArrayBuilder) {
    match kind {
        Kind::Bool => downcast::<BooleanBuilder>(builder).append_null(),
        Kind::I16 => downcast::<Int16Builder>(builder).append_null(),
        Kind::I32 => downcast::<Int32Builder>(builder).append_null(),
        Kind::I64 | Kind::Oid => downcast::<Int64Builder>(builder).append_null(),
        Kind::F32 => downcast::<Float32Builder>(builder).append_null(),
        Kind::F64 => downcast::<Float64Builder>(builder).append_null(),
        Kind::Numeric { .. } => downcast::<Decimal128Builder>(builder).append_null(),
        Kind::Text | Kind::Jsonb | Kind::Uuid | Kind::Interval => downcast::<StringBuilder>(builder).append_null(),
        Kind::Bytes => downcast::<BinaryBuilder>(builder).append_null(),
        Kind::Date => downcast::<Date32Builder>(builder).append_null(),
        Kind::Time => downcast::<Time64MicrosecondBuilder>(builder).append_null(),
        Kind::Timestamp | Kind::TimestampTz => downcast::<TimestampMicrosecondBuilder>(builder).append_null(),
        Kind::List(_) => downcast::<ListBuilder<Box<dyn ArrayBuilder>>>(builder).append_null(),
    }
}

fn text(v: &[u8]) -> Result<&str, DecodeError> {
    std::str::from_utf8(v).map_err(|_| DecodeError("text that is not UTF-8".into()))
}

/// A one-dimensional array: ndim, has-null flag, element oid, (length, lower bound) per
/// dimension, then each element as length (-1 = NULL) and bytes.
fn array(inner: &Kind, values: &mut dyn ArrayBuilder, v: &[u8]) -> Result<(), DecodeError> {
    need(v, 12, "array")?;
    let ndim = be_i32(v);
    if ndim == 0 {
        return Ok(());
    }
    if ndim != 1 {
        return Err(DecodeError(format!("a {ndim}-dimensional array (only one dimension maps to a LIST)")));
    }
    need(v, 20, "array")?;
    let len = be_i32(&v[12..]);
    let mut at = 20;
    for _ in 0..len {
        need(&v[at..], 4, "array element")?;
        let n = be_i32(&v[at..]);
        at += 4;
        if n < 0 {
            append(inner, values, None)?;
        } else {
            let end = at + n as usize;
            let element = v.get(at..end).ok_or_else(|| DecodeError("a truncated array".into()))?;
            append(inner, values, Some(element))?;
            at = end;
        }
    }
    Ok(())
}

/// A binary `numeric` as an integer at `scale`: ndigits, weight, sign, dscale, then
/// base-10000 digits; the value is Σ digit·10000^(weight−i).
pub fn numeric(v: &[u8], scale: i8) -> Result<i128, DecodeError> {
    need(v, 8, "numeric")?;
    let ndigits = be_i16(v) as usize;
    let weight = be_i16(&v[2..]) as i32;
    let sign = u16::from_be_bytes([v[4], v[5]]);
    match sign {
        0x0000 | 0x4000 => {}
        0xC000 => return Err(DecodeError("NaN".into())),
        _ => return Err(DecodeError("an infinite numeric".into())),
    }
    need(v, 8 + 2 * ndigits, "numeric")?;
    let overflow = || DecodeError(format!("a number that does not fit DECIMAL(38,{scale})"));
    let mut acc: i128 = 0;
    // Digits stand for 10000^weight, 10000^(weight-1)…; the scaled integer is
    // value · 10^scale. Walk the digits, shifting by 10^4 each, then adjust to the scale.
    for i in 0..ndigits {
        let digit = be_i16(&v[8 + 2 * i..]) as i128;
        acc = acc.checked_mul(10_000).and_then(|a| a.checked_add(digit)).ok_or_else(overflow)?;
    }
    // acc = value · 10000^(ndigits-1-weight) = value · 10^(4·(ndigits-1-weight))
    let exp10 = 4 * (ndigits as i32 - 1 - weight);
    let shift = scale as i32 - exp10;
    let scaled = if ndigits == 0 {
        0
    } else if shift >= 0 {
        10i128.checked_pow(shift as u32).and_then(|p| acc.checked_mul(p)).ok_or_else(overflow)?
    } else {
        let p = 10i128.checked_pow((-shift) as u32).ok_or_else(overflow)?;
        if acc % p != 0 {
            return Err(DecodeError(format!("a number with more than {scale} decimals")));
        }
        acc / p
    };
    if scaled.unsigned_abs() >= 10u128.pow(38) {
        return Err(overflow());
    }
    Ok(if sign == 0x4000 { -scaled } else { scaled })
}

fn uuid_text(v: &[u8]) -> String {
    let hex: String = v[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

/// `interval` (µs, days, months) in the syntax DuckDB casts to INTERVAL:
/// `14 months 3 days 04:05:06.000007`.
fn interval_text(v: &[u8]) -> String {
    let micros = be_i64(v);
    let days = be_i32(&v[8..]);
    let months = be_i32(&v[12..]);
    let sign = if micros < 0 { "-" } else { "" };
    let m = micros.unsigned_abs();
    let (h, rest) = (m / 3_600_000_000, m % 3_600_000_000);
    let (min, rest) = (rest / 60_000_000, rest % 60_000_000);
    let (s, us) = (rest / 1_000_000, rest % 1_000_000);
    format!("{months} months {days} days {sign}{h:02}:{min:02}:{s:02}.{us:06}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `numeric` in binary: ndigits, weight, sign, dscale, digits.
    fn num(weight: i16, negative: bool, dscale: u16, digits: &[i16]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend((digits.len() as i16).to_be_bytes());
        v.extend(weight.to_be_bytes());
        v.extend((if negative { 0x4000u16 } else { 0 }).to_be_bytes());
        v.extend(dscale.to_be_bytes());
        for d in digits {
            v.extend(d.to_be_bytes());
        }
        v
    }

    #[test]
    fn numerics_decode_exactly_or_refuse() {
        // 12345.678 = 1·10000 + 2345 + 6780/10000
        assert_eq!(numeric(&num(1, false, 3, &[1, 2345, 6780]), 3), Ok(12_345_678));
        assert_eq!(numeric(&num(1, true, 3, &[1, 2345, 6780]), 4), Ok(-123_456_780));
        assert_eq!(numeric(&num(0, false, 0, &[]), 2), Ok(0));
        // 0.0001 at scale 2 would lose a digit: refused, never rounded.
        assert!(numeric(&num(-1, false, 4, &[1]), 2).is_err());
        // 10^40 does not fit DECIMAL(38, 0).
        assert!(numeric(&num(10, false, 0, &[1]), 0).is_err());
        let nan = [0, 0, 0, 0, 0xC0, 0, 0, 0];
        assert!(numeric(&nan, 2).is_err());
        assert_eq!(numeric_typmod((12 << 16 | 2) + 4), Some((12, 2)));
        assert_eq!(numeric_typmod(-1), None);
    }

    #[test]
    fn texts_of_uuids_and_intervals() {
        let u: Vec<u8> = (0u8..16).collect();
        assert_eq!(uuid_text(&u), "00010203-0405-0607-0809-0a0b0c0d0e0f");
        let mut i = Vec::new();
        i.extend((-(3_723_000_007i64)).to_be_bytes());
        i.extend(3i32.to_be_bytes());
        i.extend(14i32.to_be_bytes());
        assert_eq!(interval_text(&i), "14 months 3 days -01:02:03.000007");
    }

    #[test]
    fn arrays_become_lists_and_nested_arrays_are_refused() {
        let kind = Kind::of(&Type::INT4_ARRAY, -1).unwrap();
        assert_eq!(kind, Kind::List(Box::new(Kind::I32)));
        let mut b = kind.builder(4);
        // {7,NULL}
        let mut v = Vec::new();
        for x in [1i32, 1, 23, 2, 1] {
            v.extend(x.to_be_bytes());
        }
        v.extend(4i32.to_be_bytes());
        v.extend(7i32.to_be_bytes());
        v.extend((-1i32).to_be_bytes());
        append(&kind, b.as_mut(), Some(&v)).unwrap();
        append(&kind, b.as_mut(), None).unwrap();
        let list = b.finish();
        assert_eq!((list.len(), list.null_count()), (2, 1));
        assert!(Kind::of(&Type::POINT, -1).is_err());
    }
}
