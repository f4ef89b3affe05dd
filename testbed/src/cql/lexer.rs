//! Splits CQL text into tokens, remembering where each one starts for error messages.

use crate::error::CqlError;

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// An unquoted identifier or keyword, lower-cased (CQL folds unquoted names).
    Ident(String),
    /// A double-quoted identifier, case preserved.
    QuotedIdent(String),
    Str(String),
    Int(String),
    Float(String),
    Uuid(String),
    Blob(Vec<u8>),
    Sym(&'static str),
    /// An anonymous bind marker `?`.
    Marker,
    /// A named bind marker `:name`.
    NamedMarker(String),
    Eof,
}

impl Tok {
    pub fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => s.clone(),
            Tok::QuotedIdent(s) => format!("\"{s}\""),
            Tok::Str(s) => format!("'{s}'"),
            Tok::Int(s) | Tok::Float(s) | Tok::Uuid(s) => s.clone(),
            Tok::Blob(_) => "blob constant".into(),
            Tok::Sym(s) => (*s).to_string(),
            Tok::Marker => "?".into(),
            Tok::NamedMarker(s) => format!(":{s}"),
            Tok::Eof => "<EOF>".into(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Token {
    pub tok: Tok,
    pub line: usize,
    pub col: usize,
}

const SYMBOLS: [&str; 19] = [
    "<=", ">=", "!=", "(", ")", ",", ";", ".", "=", "<", ">", "+", "-", "*", "[", "]", "{", "}",
    ":",
];

fn is_uuid_at(chars: &[char], i: usize) -> bool {
    const GROUPS: [usize; 5] = [8, 4, 4, 4, 12];
    let mut pos = i;
    for (g, len) in GROUPS.iter().enumerate() {
        for _ in 0..*len {
            match chars.get(pos) {
                Some(c) if c.is_ascii_hexdigit() => pos += 1,
                _ => return false,
            }
        }
        if g < 4 {
            if chars.get(pos) != Some(&'-') {
                return false;
            }
            pos += 1;
        }
    }
    !chars
        .get(pos)
        .is_some_and(|c| c.is_alphanumeric() || *c == '_')
}

pub fn tokenize(text: &str) -> Result<Vec<Token>, CqlError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line, mut line_start) = (0usize, 1usize, 0usize);
    while i < chars.len() {
        let c = chars[i];
        let col = i - line_start;
        let at_line = line;
        let err = move |msg: String| CqlError::syntax(format!("line {at_line}:{col} {msg}"));
        if c == '\n' {
            line += 1;
            i += 1;
            line_start = i;
            continue;
        }
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if (c == '-' && chars.get(i + 1) == Some(&'-'))
            || (c == '/' && chars.get(i + 1) == Some(&'/'))
        {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if c == '/' && chars.get(i + 1) == Some(&'*') {
            i += 2;
            while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                if chars[i] == '\n' {
                    line += 1;
                    line_start = i + 1;
                }
                i += 1;
            }
            if i >= chars.len() {
                return Err(err("unterminated comment".into()));
            }
            i += 2;
            continue;
        }
        let tok = if c == '\'' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(err("unterminated string literal".into())),
                    Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                        s.push('\'');
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(ch) => {
                        s.push(*ch);
                        i += 1;
                    }
                }
            }
            Tok::Str(s)
        } else if c == '$' && chars.get(i + 1) == Some(&'$') {
            let mut s = String::new();
            i += 2;
            loop {
                match chars.get(i) {
                    None => return Err(err("unterminated $$ string literal".into())),
                    Some('$') if chars.get(i + 1) == Some(&'$') => {
                        i += 2;
                        break;
                    }
                    Some(ch) => {
                        s.push(*ch);
                        i += 1;
                    }
                }
            }
            Tok::Str(s)
        } else if c == '"' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(err("unterminated quoted identifier".into())),
                    Some('"') if chars.get(i + 1) == Some(&'"') => {
                        s.push('"');
                        i += 2;
                    }
                    Some('"') => {
                        i += 1;
                        break;
                    }
                    Some(ch) => {
                        s.push(*ch);
                        i += 1;
                    }
                }
            }
            Tok::QuotedIdent(s)
        } else if is_uuid_at(&chars, i) {
            let s: String = chars[i..i + 36].iter().collect();
            i += 36;
            Tok::Uuid(s.to_ascii_lowercase())
        } else if c == '0' && matches!(chars.get(i + 1), Some('x') | Some('X')) {
            i += 2;
            let start = i;
            while i < chars.len() && chars[i].is_ascii_hexdigit() {
                i += 1;
            }
            let hex: String = chars[start..i].iter().collect();
            if !hex.len().is_multiple_of(2) {
                return Err(err(format!(
                    "blob constant 0x{hex} has an odd number of digits"
                )));
            }
            let bytes = (0..hex.len())
                .step_by(2)
                .map(|k| u8::from_str_radix(&hex[k..k + 2], 16))
                .collect::<Result<Vec<u8>, _>>()
                .map_err(|_| err(format!("invalid blob constant 0x{hex}")))?;
            Tok::Blob(bytes)
        } else if c.is_ascii_digit() {
            let start = i;
            let mut float = false;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            if chars.get(i) == Some(&'.') && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()) {
                float = true;
                i += 1;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
            }
            if matches!(chars.get(i), Some('e') | Some('E')) {
                let mut j = i + 1;
                if matches!(chars.get(j), Some('+') | Some('-')) {
                    j += 1;
                }
                if chars.get(j).is_some_and(|d| d.is_ascii_digit()) {
                    float = true;
                    i = j;
                    while i < chars.len() && chars[i].is_ascii_digit() {
                        i += 1;
                    }
                }
            }
            let s: String = chars[start..i].iter().collect();
            if float {
                Tok::Float(s)
            } else {
                Tok::Int(s)
            }
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            Tok::Ident(chars[start..i].iter().collect::<String>().to_lowercase())
        } else if c == '?' {
            i += 1;
            Tok::Marker
        } else if c == ':'
            && chars
                .get(i + 1)
                .is_some_and(|n| n.is_alphabetic() || *n == '_')
        {
            i += 1;
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            Tok::NamedMarker(chars[start..i].iter().collect::<String>().to_lowercase())
        } else if let Some(sym) = SYMBOLS.iter().find(|s| {
            s.chars()
                .enumerate()
                .all(|(k, sc)| chars.get(i + k) == Some(&sc))
        }) {
            i += sym.len();
            Tok::Sym(sym)
        } else {
            return Err(err(format!("unexpected character '{c}'")));
        };
        out.push(Token { tok, line, col });
    }
    out.push(Token {
        tok: Tok::Eof,
        line,
        col: chars.len() - line_start,
    });
    Ok(out)
}
