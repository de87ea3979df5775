//! `Authentication-Results` (RFC 8601): who checked the mail and what they
//! found.
//!
//! ```text
//! authserv-id [version] ; method[/version]=result [reason=value]
//!                         [ptype.property=value ...] ; ...
//! ```
//!
//! A real tokenizer after RFC 5322 and RFC 2045, because the header is
//! where a forger hides things: comments (`CFWS`, nested, with
//! quoted-pairs) may stand between any two tokens, quoted strings may hold
//! `;`, `=` and `\"`, and a header may be folded over several lines. Only
//! what helpdesk judges by is kept: the authserv-id, and per result its
//! method, result, reason and properties (`header.from`, `header.d`,
//! `smtp.mailfrom`...).
//!
//! Real headers bend the grammar, so property values are read leniently
//! (a `header.b` holds base64 with `/` and `+`; `smtp.mailfrom` an
//! addr-spec), an OpenDKIM job id after the authserv-id (`mx/4AB2`) is
//! dropped, and empty results (`;;`, a trailing `;`) are skipped. Anything
//! else that does not fit is an error, never a guess: a header that can be
//! read two ways must not be read the convenient way.

/// One parsed header.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct AuthResults {
    /// Lower case.
    pub authserv_id: String,
    /// The `authres-version` after the authserv-id, when given.
    pub version: Option<String>,
    pub results: Vec<MethodResult>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct MethodResult {
    /// Lower case: `dmarc`, `dkim`, `spf`...
    pub method: String,
    /// `dkim/1` gives `1`.
    pub version: Option<String>,
    /// Lower case: `pass`, `fail`, `none`...
    pub result: String,
    /// The `reason=` value, unquoted.
    pub reason: Option<String>,
    /// `(ptype.property, value)`, names lower case, value as written (a
    /// quoted string unquoted).
    pub properties: Vec<(String, String)>,
}

impl MethodResult {
    pub(crate) fn property(&self, name: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A header that does not follow the grammar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("character {at}: {what}")]
pub(crate) struct Malformed {
    /// The authserv-id, when the header got that far: a malformed header
    /// claiming a trusted id must not simply be skipped.
    pub authserv_id: Option<String>,
    /// 1-based character position in the header value.
    pub at: usize,
    pub what: String,
}

/// Parses a header value (folded or not).
pub(crate) fn parse(value: &str) -> Result<AuthResults, Malformed> {
    let mut parser = Parser {
        chars: value.chars().collect(),
        pos: 0,
        authserv_id: None,
    };
    parser.header()
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
    authserv_id: Option<String>,
}

/// RFC 2045 `tspecials`, which end a token.
const TSPECIALS: &[char] = &[
    '(', ')', '<', '>', '@', ',', ';', ':', '\\', '"', '/', '[', ']', '?', '=',
];

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_token_char(c: char) -> bool {
    !c.is_control() && !is_space(c) && !TSPECIALS.contains(&c)
}

/// RFC 8601 `Keyword` (an ldh-str), with `_` let through: real methods and
/// properties are plain words.
fn is_keyword_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// What an unquoted property value may hold: a token, an addr-spec
/// (`a@b`, `@b`), or base64 (`header.b=ab/c+d=`).
fn is_pvalue_char(c: char) -> bool {
    !c.is_control() && !is_space(c) && !matches!(c, '(' | ')' | ';' | '"' | '\\')
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn fail<T>(&self, what: impl Into<String>) -> Result<T, Malformed> {
        Err(Malformed {
            authserv_id: self.authserv_id.clone(),
            at: self.pos + 1,
            what: what.into(),
        })
    }

    /// Skips white space (folding included) and comments.
    fn cfws(&mut self) -> Result<(), Malformed> {
        loop {
            match self.peek() {
                Some(c) if is_space(c) => self.pos += 1,
                Some('(') => self.comment()?,
                _ => return Ok(()),
            }
        }
    }

    /// `( ... )`, nested, with quoted-pairs.
    fn comment(&mut self) -> Result<(), Malformed> {
        let start = self.pos;
        let mut depth = 0usize;
        while let Some(c) = self.peek() {
            self.pos += 1;
            match c {
                '\\' => {
                    if self.peek().is_none() {
                        break;
                    }
                    self.pos += 1;
                }
                '(' => depth += 1,
                ')' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        return Ok(());
                    }
                }
                _ => {}
            }
        }
        self.pos = start;
        self.fail("a comment that is never closed")
    }

    /// `"..."` with quoted-pairs; folding inside is removed.
    fn quoted(&mut self) -> Result<String, Malformed> {
        let start = self.pos;
        self.pos += 1;
        let mut out = String::new();
        while let Some(c) = self.peek() {
            self.pos += 1;
            match c {
                '"' => return Ok(out),
                '\\' => match self.peek() {
                    Some(escaped) => {
                        self.pos += 1;
                        out.push(escaped);
                    }
                    None => break,
                },
                '\r' | '\n' => {}
                c => out.push(c),
            }
        }
        self.pos = start;
        self.fail("a quoted string that is never closed")
    }

    fn run(&mut self, accept: fn(char) -> bool) -> String {
        let start = self.pos;
        while self.peek().is_some_and(accept) {
            self.pos += 1;
        }
        self.chars
            .get(start..self.pos)
            .unwrap_or_default()
            .iter()
            .collect()
    }

    fn keyword(&mut self, what: &str) -> Result<String, Malformed> {
        let word = self.run(is_keyword_char);
        if word.is_empty() {
            return self.fail(format!("expected {what}"));
        }
        Ok(word.to_ascii_lowercase())
    }

    /// RFC 2045 `value`: a token or a quoted string.
    fn value(&mut self, what: &str) -> Result<String, Malformed> {
        if self.peek() == Some('"') {
            return self.quoted();
        }
        let token = self.run(is_token_char);
        if token.is_empty() {
            return self.fail(format!("expected {what}"));
        }
        Ok(token)
    }

    /// A property value: a quoted string (perhaps the local part of an
    /// addr-spec), or a lenient unquoted run.
    fn pvalue(&mut self, name: &str) -> Result<String, Malformed> {
        if self.peek() == Some('"') {
            let quoted = self.quoted()?;
            if self.peek() == Some('@') {
                self.pos += 1;
                let domain = self.run(is_pvalue_char);
                if domain.is_empty() {
                    return self.fail(format!("expected a domain after @ in {name}"));
                }
                return Ok(format!("{quoted}@{domain}"));
            }
            return Ok(quoted);
        }
        let value = self.run(is_pvalue_char);
        if value.is_empty() {
            return self.fail(format!("expected a value for {name}"));
        }
        Ok(value)
    }

    fn expect(&mut self, c: char, what: &str) -> Result<(), Malformed> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            self.fail(format!("expected {what}"))
        }
    }

    fn header(&mut self) -> Result<AuthResults, Malformed> {
        self.cfws()?;
        let authserv_id = self.value("an authserv-id")?.to_ascii_lowercase();
        self.authserv_id = Some(authserv_id.clone());
        // OpenDKIM's AuthservIDWithJobID: `mx.example.com/4AB2C3`.
        if self.peek() == Some('/') {
            self.pos += 1;
            self.run(is_token_char);
        }
        self.cfws()?;
        let mut version = None;
        if self.peek().is_some_and(|c| c.is_ascii_digit()) {
            version = Some(self.run(|c| c.is_ascii_digit()));
            self.cfws()?;
        }
        let mut results = Vec::new();
        loop {
            self.cfws()?;
            match self.peek() {
                None => break,
                Some(';') => self.pos += 1,
                Some(_) => return self.fail("expected ; before the next result"),
            }
            self.cfws()?;
            if matches!(self.peek(), None | Some(';')) {
                continue;
            }
            if let Some(result) = self.resinfo()? {
                results.push(result);
            }
        }
        Ok(AuthResults {
            authserv_id,
            version,
            results,
        })
    }

    /// One `method=result ...` (`None` for the `none` of a header with no
    /// results).
    fn resinfo(&mut self) -> Result<Option<MethodResult>, Malformed> {
        let method = self.keyword("a method (dkim, spf, dmarc...)")?;
        self.cfws()?;
        if method == "none" && matches!(self.peek(), None | Some(';')) {
            return Ok(None);
        }
        let mut version = None;
        if self.peek() == Some('/') {
            self.pos += 1;
            self.cfws()?;
            let digits = self.run(|c| c.is_ascii_digit());
            if digits.is_empty() {
                return self.fail(format!("expected a version number after {method}/"));
            }
            version = Some(digits);
            self.cfws()?;
        }
        self.expect('=', &format!("= after the method {method}"))?;
        self.cfws()?;
        let result = self.keyword(&format!("a result for {method}"))?;
        let mut out = MethodResult {
            method,
            version,
            result,
            reason: None,
            properties: Vec::new(),
        };
        loop {
            self.cfws()?;
            if matches!(self.peek(), None | Some(';')) {
                return Ok(Some(out));
            }
            let ptype = self.keyword("a property (ptype.property=value) or ;")?;
            self.cfws()?;
            let name = if self.peek() == Some('.') {
                self.pos += 1;
                self.cfws()?;
                let property = self.keyword(&format!("a property name after {ptype}."))?;
                self.cfws()?;
                format!("{ptype}.{property}")
            } else {
                ptype
            };
            self.expect('=', &format!("= after {name}"))?;
            self.cfws()?;
            if name == "reason" {
                let reason = self.value("a reason")?;
                if out.reason.replace(reason).is_some() {
                    return self.fail(format!("a second reason in the {} result", out.method));
                }
                continue;
            }
            let value = self.pvalue(&name)?;
            // One result naming two domains could be read either way.
            if out.property(&name).is_some() {
                return self.fail(format!("{name} given twice in one {} result", out.method));
            }
            out.properties.push((name, value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdicts(parsed: &AuthResults) -> Vec<(&str, &str)> {
        parsed
            .results
            .iter()
            .map(|r| (r.method.as_str(), r.result.as_str()))
            .collect()
    }

    #[test]
    fn gmail_style() {
        let value = "mx.google.com;\r\n       dkim=pass header.i=@example.com header.s=20230601 header.b=ab/c+D=;\r\n       spf=pass (google.com: domain of a@example.com designates 1.2.3.4 as permitted sender) smtp.mailfrom=a@example.com;\r\n       dmarc=pass (p=NONE sp=NONE dis=NONE) header.from=example.com";
        let parsed = parse(value).unwrap();
        assert_eq!(parsed.authserv_id, "mx.google.com");
        assert_eq!(
            verdicts(&parsed),
            [("dkim", "pass"), ("spf", "pass"), ("dmarc", "pass")]
        );
        assert_eq!(parsed.results[0].property("header.i"), Some("@example.com"));
        assert_eq!(parsed.results[0].property("header.b"), Some("ab/c+D="));
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
    fn opendmarc_opendkim_and_rspamd_style() {
        let parsed =
            parse("mx.example.com; dmarc=fail (p=reject dis=none) header.from=example.com")
                .unwrap();
        assert_eq!(parsed.results[0].result, "fail");
        let parsed = parse("mx.example.com 1; dkim = pass (2048-bit key; unprotected) header.d=example.com header.i=@example.com header.b=\"x;y\"; dkim-atps=neutral").unwrap();
        assert_eq!(parsed.authserv_id, "mx.example.com");
        assert_eq!(parsed.version.as_deref(), Some("1"));
        assert_eq!(
            verdicts(&parsed),
            [("dkim", "pass"), ("dkim-atps", "neutral")]
        );
        assert_eq!(parsed.results[0].property("header.d"), Some("example.com"));
        assert_eq!(parsed.results[0].property("header.b"), Some("x;y"));
        let parsed = parse("mx.example.com/4AB2C3; dmarc=pass reason=\"SPF not aligned (relaxed)\" header.from=example.com (policy=none)").unwrap();
        assert_eq!(parsed.authserv_id, "mx.example.com");
        assert_eq!(
            parsed.results[0].reason.as_deref(),
            Some("SPF not aligned (relaxed)")
        );
        assert_eq!(
            parsed.results[0].property("header.from"),
            Some("example.com")
        );
        let parsed = parse("mx.example.com; none").unwrap();
        assert!(parsed.results.is_empty());
        let parsed = parse("mx.example.com; dkim/1=pass header.d=example.com;").unwrap();
        assert_eq!(parsed.results[0].version.as_deref(), Some("1"));
    }

    /// A quoted-pair `\"` stays inside the quoted string: the `;dmarc=pass`
    /// after it is part of the value, not a second result.
    #[test]
    fn quoted_pairs_stay_inside_quoted_strings() {
        let parsed = parse(
            r#"mx.example.com; dmarc=fail header.from="x\";dmarc=pass header.from=example.com""#,
        )
        .unwrap();
        assert_eq!(verdicts(&parsed), [("dmarc", "fail")]);
        assert_eq!(
            parsed.results[0].property("header.from"),
            Some(r#"x";dmarc=pass header.from=example.com"#)
        );
        // The same inside a comment: `\)` does not close it.
        let parsed =
            parse(r"mx.example.com; dmarc=fail (a \) b; dmarc=pass) header.from=example.com")
                .unwrap();
        assert_eq!(verdicts(&parsed), [("dmarc", "fail")]);
    }

    /// The same header written in every way the grammar allows reads the
    /// same: comments and folding between any two tokens, any case,
    /// quoted values, versions.
    #[test]
    fn every_spelling_of_one_header_reads_the_same() {
        let gaps = [
            "",
            " ",
            "\r\n\t",
            " (c) ",
            "(nested (deep \\) still) comment)",
            "\r\n (folded\r\n comment) ",
        ];
        let mut checked = 0;
        for gap in gaps {
            for case in [str::to_owned as fn(&str) -> String, str::to_ascii_uppercase] {
                for from in ["example.com", "\"example.com\""] {
                    for version in ["", "1"] {
                        let g = gap;
                        // CFWS is required between a result and its properties.
                        let sep = if gap.is_empty() { " " } else { gap };
                        let v = if version.is_empty() {
                            String::new()
                        } else {
                            format!(" {version}")
                        };
                        let mx = case("mx.example.com");
                        let dmarc = case("dmarc");
                        let pass = case("pass");
                        let header = case("header");
                        let prop = case("from");
                        let dkim = case("dkim");
                        let value = format!(
                            "{g}{mx}{v}{g};{g}{dkim}{g}/{g}1{g}={g}{pass}{sep}{header}{g}.{g}d{g}={g}example.com{g};{g}{dmarc}{g}={g}{pass}{sep}{header}{g}.{g}{prop}{g}={g}{from}{g}"
                        );
                        let parsed = parse(&value).unwrap_or_else(|e| panic!("{value:?}: {e}"));
                        assert_eq!(parsed.authserv_id, "mx.example.com", "{value:?}");
                        assert_eq!(
                            verdicts(&parsed),
                            [("dkim", "pass"), ("dmarc", "pass")],
                            "{value:?}"
                        );
                        assert_eq!(
                            parsed.results[1].property("header.from"),
                            Some("example.com"),
                            "{value:?}"
                        );
                        assert_eq!(parsed.results[0].version.as_deref(), Some("1"));
                        assert_eq!(
                            parsed.version.as_deref(),
                            (!version.is_empty()).then_some(version)
                        );
                        checked += 1;
                    }
                }
            }
        }
        assert_eq!(checked, gaps.len() * 2 * 2 * 2);
    }

    #[test]
    fn addr_spec_values() {
        let parsed = parse("mx; spf=pass smtp.mailfrom=\"a b\"@example.com; dkim=pass header.i=@example.com; spf=none smtp.helo=mail.example.com").unwrap();
        assert_eq!(
            parsed.results[0].property("smtp.mailfrom"),
            Some("a b@example.com")
        );
        assert_eq!(parsed.results[1].property("header.i"), Some("@example.com"));
        assert_eq!(
            parsed.results[2].property("smtp.helo"),
            Some("mail.example.com")
        );
    }

    /// What cannot be read one way only is an error, never a partial read.
    #[test]
    fn ambiguous_or_broken_headers_are_errors() {
        for bad in [
            "",
            "   ",
            ";;",
            "mx.example.com dmarc=pass",
            "mx.example.com; dmarc",
            "mx.example.com; dmarc=",
            "mx.example.com; =pass",
            "mx.example.com; dmarc=pass header.from",
            "mx.example.com; dmarc=pass header.from=",
            "mx.example.com; dmarc=pass header.from=\"example.com",
            "mx.example.com; dmarc=pass (unclosed header.from=example.com",
            "mx.example.com; dmarc=pass header.from=evil.example header.from=example.com",
            "mx.example.com; dmarc=pass header.from=x\"example.com\"",
            "mx.example.com; dkim/=pass",
            "mx.example.com; dmarc=pass reason=a reason=b",
            "spf=pass (sender IP is 192.0.2.1) smtp.mailfrom=example.com",
        ] {
            let err = parse(bad).expect_err(bad);
            assert!(err.at >= 1, "{bad:?}: {err}");
        }
        // A malformed header still says whose it claims to be.
        let err = parse("mx.example.com; dmarc=pass header.from=\"x").unwrap_err();
        assert_eq!(err.authserv_id.as_deref(), Some("mx.example.com"));
    }

    /// Generated junk: every prefix of real and hostile headers, and
    /// every single-character splice, never panics.
    #[test]
    fn no_input_panics() {
        let seeds = [
            r#"mx.example.com 1; dkim=pass (c (d) \) e) header.d="ex\"ample.com"; dmarc=pass header.from=example.com"#,
            "mx.google.com;\r\n dkim=pass header.i=@example.com;\r\n spf=pass smtp.mailfrom=a@example.com",
            "é; ü=ö ä.ß=\u{0}\u{7f}",
        ];
        let specials = [
            '(', ')', '"', '\\', ';', '=', '/', '.', '@', ' ', '\r', '\n', 'é',
        ];
        for seed in seeds {
            let chars: Vec<char> = seed.chars().collect();
            for end in 0..=chars.len() {
                let prefix: String = chars[..end].iter().collect();
                let _ = parse(&prefix);
                for c in specials {
                    let mut spliced = chars.clone();
                    spliced.insert(end, c);
                    let _ = parse(&spliced.iter().collect::<String>());
                }
            }
        }
    }
}
