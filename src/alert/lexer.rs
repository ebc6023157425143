//! The tokenizer of rule expressions: words, numbers, operators and punctuation, each with its
//! byte offset for error messages.

use super::parse::ExprError;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Token<'a> {
    Ident(&'a str),
    Number(f64),
    Op(&'a str),
    Percent,
    Star,
    Open,
    Close,
    End,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Spanned<'a> {
    pub(super) token: Token<'a>,
    pub(super) offset: usize,
    pub(super) text: &'a str,
}

impl Spanned<'_> {
    /// Names the token in error messages: `` `foo` `` or `end of expression`.
    pub(super) fn describe(&self) -> String {
        match self.token {
            Token::End => "end of expression".to_owned(),
            _ => format!("`{}`", self.text),
        }
    }
}

pub(super) fn error<T>(offset: usize, message: impl Into<String>) -> Result<T, ExprError> {
    Err(ExprError {
        offset,
        message: message.into(),
    })
}

/// Splits an expression into tokens, ending with [`Token::End`] at the text's length.
pub(super) fn tokenize(text: &str) -> Result<Vec<Spanned<'_>>, ExprError> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut start = 0;
    while start < bytes.len() {
        let byte = bytes[start];
        if byte.is_ascii_whitespace() {
            start += 1;
            continue;
        }
        let end = if byte.is_ascii_alphabetic() || byte == b'_' {
            start + count_while(&bytes[start..], |b| b.is_ascii_alphanumeric() || b == b'_')
        } else if byte.is_ascii_digit() || byte == b'.' {
            start + count_while(&bytes[start..], |b| b.is_ascii_digit() || b == b'.')
        } else if matches!(byte, b'>' | b'<' | b'=' | b'!') {
            let two = bytes.get(start + 1) == Some(&b'=');
            start + if two { 2 } else { 1 }
        } else if byte.is_ascii() {
            start + 1
        } else {
            let width = text[start..].chars().next().map_or(1, char::len_utf8);
            let bad = &text[start..start + width];
            return error(
                start,
                format!("unexpected character `{bad}` in rule expression"),
            );
        };
        let slice = &text[start..end];
        let token = match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => Token::Ident(slice),
            b'0'..=b'9' | b'.' => match slice.parse::<f64>() {
                Ok(value) => Token::Number(value),
                Err(_) => return error(start, format!("invalid number `{slice}`")),
            },
            b'>' | b'<' | b'!' if slice == "!" => {
                return error(start, "unexpected `!`: write `!=` or use `not`");
            }
            b'=' if slice == "=" => return error(start, "unexpected `=`: write `==` to compare"),
            b'>' | b'<' | b'=' | b'!' => Token::Op(slice),
            b'%' => Token::Percent,
            b'*' => Token::Star,
            b'(' => Token::Open,
            b')' => Token::Close,
            _ => {
                return error(
                    start,
                    format!("unexpected character `{slice}` in rule expression"),
                );
            }
        };
        tokens.push(Spanned {
            token,
            offset: start,
            text: slice,
        });
        start = end;
    }
    tokens.push(Spanned {
        token: Token::End,
        offset: text.len(),
        text: "",
    });
    Ok(tokens)
}

fn count_while(bytes: &[u8], keep: impl Fn(u8) -> bool) -> usize {
    bytes.iter().take_while(|byte| keep(**byte)).count()
}
