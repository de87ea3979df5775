//! Entry points for the fuzz targets in `fuzz/` and for the regression test
//! that replays what they found (`tests/fuzz_regressions.rs`): each feeds
//! arbitrary bytes to one parser the program owns and exercises its result.

use crate::keywords::Keywords;
use crate::phrasebook::{Input, Phrasebook};

/// A raw message, read as `run` and `parse` read it.
pub fn mail_read(data: &[u8]) {
    for header in ["From", "X-Original-Sender"] {
        let mail = crate::mail::read(data, header);
        let _ = crate::loops::silence(&mail, Some("helpdesk@example.com"));
        for position in [
            crate::config::Position::Above,
            crate::config::Position::Below,
        ] {
            let _ = crate::trust::authenticate(
                Some(&crate::config::Authentication {
                    authserv_id: vec!["mx.example.com".into()],
                    received_by: vec!["mx.example.com".into()],
                    require: crate::config::Require::Dmarc,
                    position: Some(position),
                }),
                &mail,
            );
        }
    }
}

/// A keywords file, then a subject (the part after the first NUL byte).
pub fn keywords(data: &[u8]) {
    let (file, subject) = split(data);
    if let Ok(keywords) = Keywords::parse("keywords.txt", &file) {
        let _ = keywords.classify(&subject);
        for request_type in keywords.request_types() {
            let _ = keywords.phrases_of(request_type);
        }
    }
}

/// A phrasebook, then a mail text (the part after the first NUL byte).
pub fn phrasebook(data: &[u8]) {
    let (file, text) = split(data);
    if let Ok(book) = Phrasebook::parse("p_phrases.txt", &file) {
        let extraction = book.extract(Input {
            text: &text,
            sender: Some("alice@example.com"),
            max_value_length: 1024,
        });
        let _ = book.missing(&extraction.vars);
        let _ = crate::ansible::extra_vars_yaml(&extraction.vars);
    }
}

/// An Authentication-Results header value.
pub fn authres(data: &[u8]) {
    let _ = crate::authres::parse(&String::from_utf8_lossy(data));
}

fn split(data: &[u8]) -> (String, String) {
    let at = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let (head, tail) = data.split_at(at);
    (
        String::from_utf8_lossy(head).into_owned(),
        String::from_utf8_lossy(tail.get(1..).unwrap_or_default()).into_owned(),
    )
}
