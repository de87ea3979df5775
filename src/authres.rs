//! `Authentication-Results` (RFC 8601): who checked the mail and what they
//! found.
//!
//! `authserv-id [version]; method=result [reason=...] [ptype.property=value
//! ...]; ...`, with comments in parentheses anywhere. Only what helpdesk
//! judges by is kept: the authserv-id, and per result its method, result
//! and properties (`header.from`, `header.d`, `smtp.mailfrom`...).

/// One parsed header.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthResults {
    pub authserv_id: String,
    pub results: Vec<MethodResult>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MethodResult {
    /// Lower case: `dmarc`, `dkim`, `spf`...
    pub method: String,
    /// Lower case: `pass`, `fail`, `none`...
    pub result: String,
    /// `(ptype.property, value)`, property lower case, value as written.
    pub properties: Vec<(String, String)>,
}

impl MethodResult {
    pub fn property(&self, name: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses a header value. `None` when there is not even an authserv-id.
pub fn parse(value: &str) -> Option<AuthResults> {
    let text = strip_comments(value);
    let mut parts = split_outside_quotes(&text, ';').into_iter();
    let authserv_id = parts
        .next()?
        .split_whitespace()
        .next()?
        .to_ascii_lowercase();
    let results = parts
        .filter_map(|part| {
            let tokens = tokens(&part);
            let (first, rest) = tokens.split_first()?;
            let (method, result) = first.split_once('=')?;
            let method = method
                .split('/')
                .next()
                .unwrap_or(method)
                .trim()
                .to_ascii_lowercase();
            if method.is_empty() || method == "none" {
                return None;
            }
            let properties = rest
                .iter()
                .filter_map(|t| {
                    let (k, v) = t.split_once('=')?;
                    Some((k.trim().to_ascii_lowercase(), unquote(v.trim()).to_owned()))
                })
                .collect();
            Some(MethodResult {
                method,
                result: result.trim().to_ascii_lowercase(),
                properties,
            })
        })
        .collect();
    Some(AuthResults {
        authserv_id,
        results,
    })
}

/// Removes `( ... )` comments (nested, with `\` escapes), leaving quoted
/// strings alone.
fn strip_comments(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut depth = 0usize;
    let mut in_quote = false;
    let mut escaped = false;
    for c in value.chars() {
        if escaped {
            escaped = false;
            if depth == 0 {
                out.push(c);
            }
            continue;
        }
        match c {
            '\\' => {
                escaped = true;
                if depth == 0 {
                    out.push(c);
                }
            }
            '"' if depth == 0 => {
                in_quote = !in_quote;
                out.push(c);
            }
            '(' if !in_quote => depth += 1,
            ')' if !in_quote && depth > 0 => {
                depth -= 1;
                out.push(' ');
            }
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

fn split_outside_quotes(text: &str, separator: char) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut in_quote = false;
    for c in text.chars() {
        if c == '"' {
            in_quote = !in_quote;
        }
        if c == separator && !in_quote {
            parts.push(String::new());
        } else if let Some(last) = parts.last_mut() {
            last.push(c);
        }
    }
    parts
}

/// White-space separated tokens, where `a = b` is one token `a=b`.
fn tokens(part: &str) -> Vec<String> {
    let joined = part.replace(" =", "=").replace("= ", "=");
    let mut tokens = Vec::new();
    let mut current = String::new();
    let mut in_quote = false;
    for c in joined.chars() {
        if c == '"' {
            in_quote = !in_quote;
        }
        if c.is_whitespace() && !in_quote {
            if !current.is_empty() {
                tokens.push(std::mem::take(&mut current));
            }
        } else {
            current.push(c);
        }
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    tokens
}

fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gmail_style() {
        let value = "mx.google.com;\r\n       dkim=pass header.i=@example.com header.s=20230601 header.b=abc;\r\n       spf=pass (google.com: domain of a@example.com designates 1.2.3.4 as permitted sender) smtp.mailfrom=a@example.com;\r\n       dmarc=pass (p=NONE sp=NONE dis=NONE) header.from=example.com";
        let parsed = parse(value).unwrap();
        assert_eq!(parsed.authserv_id, "mx.google.com");
        let methods: Vec<(&str, &str)> = parsed
            .results
            .iter()
            .map(|r| (r.method.as_str(), r.result.as_str()))
            .collect();
        assert_eq!(
            methods,
            [("dkim", "pass"), ("spf", "pass"), ("dmarc", "pass")]
        );
        assert_eq!(parsed.results[0].property("header.i"), Some("@example.com"));
        assert_eq!(
            parsed.results[1].property("smtp.mailfrom"),
            Some("a@example.com")
        );
        assert_eq!(
            parsed.results[2].property("header.from"),
            Some("example.com")
        );
    }

    #[test]
    fn opendmarc_and_opendkim_style() {
        let parsed =
            parse("mx.example.com; dmarc=fail (p=reject dis=none) header.from=example.com")
                .unwrap();
        assert_eq!(parsed.results[0].result, "fail");
        let parsed = parse("mx.example.com 1; dkim = pass (2048-bit key; unprotected) header.d=example.com header.i=@example.com header.b=\"x;y\"").unwrap();
        assert_eq!(parsed.authserv_id, "mx.example.com");
        assert_eq!(parsed.results.len(), 1);
        assert_eq!(parsed.results[0].property("header.d"), Some("example.com"));
        assert_eq!(parsed.results[0].property("header.b"), Some("x;y"));
        let parsed = parse("mx.example.com; none").unwrap();
        assert!(parsed.results.is_empty());
    }

    #[test]
    fn garbage() {
        assert_eq!(parse(""), None);
        assert_eq!(parse("   ;;"), None);
        for junk in ["((((", "\"", "a; =", "a; b=c d=\"", "x; (unclosed", "\\"] {
            let _ = parse(junk);
        }
    }
}
