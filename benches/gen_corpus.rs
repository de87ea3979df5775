//! Writes the benchmark corpus, reproducibly (a fixed seed):
//!
//!   cargo run --release --example gen_corpus -- OUT
//!
//! OUT/maildir/          10,000 mails of realistic shapes (plain,
//!                       multipart/alternative, HTML-only, base64,
//!                       quoted-printable Latin-1, Windows-1252, replies
//!                       with quoted history, attachments)
//! OUT/corpus.mbox       the same 10,000 as one mbox
//! OUT/typical.eml       one typical request
//! OUT/big.eml           one 25 MB mail with attachments
//! OUT/sizes/            {plain,html,attachment}-{10k,1m,10m}.eml: one
//!                       request in a plain-text body, an HTML body, or a
//!                       short text part with a base64 PDF attachment, at
//!                       10 KB, 1 MB and 10.4 MB (under the 10 MiB
//!                       limits.message_size, so read whole)
//! OUT/large/            a helpdesk folder with 1,000 request types and
//!                       10,000 keyword phrases, with config.yaml
//! OUT/default/          the shipped helpdesk folder, with config.yaml and
//!                       config-32mib.yaml (limits.message_size raised so
//!                       that big.eml is read, not cut)

use std::fmt::Write as _;
use std::fs;
use std::path::Path;

/// xorshift64*: small, fast, and the same numbers everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const NAMES: &[&str] = &[
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
    "oscar", "peggy", "trent", "victor", "walter",
];
const WORDS: &[&str] = &[
    "the", "server", "please", "thanks", "project", "report", "meeting", "tomorrow", "budget",
    "deadline", "review", "update", "printer", "network", "laptop", "folder", "shared", "access",
    "weekend", "invoice",
];

fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len() * 4 / 3 + bytes.len() / 57 * 2 + 4);
    for (n, chunk) in bytes.chunks(3).enumerate() {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let v = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[((v >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
        if n % 19 == 18 {
            out.push_str("\r\n");
        }
    }
    out
}

fn filler(rng: &mut Rng, words: usize) -> String {
    let mut text = String::new();
    for i in 0..words {
        text.push_str(rng.pick(WORDS));
        text.push(if i % 12 == 11 { '\n' } else { ' ' });
    }
    text
}

/// A request body and subject, one of the shipped capabilities or none.
fn request(rng: &mut Rng, sender: &str) -> (String, String) {
    let user = rng.pick(NAMES);
    match rng.below(6) {
        0 => (
            "Increase Storage Quota".into(),
            format!(
                "Hello, I'd like to increase my storage quota by {}.{} GB please.",
                rng.below(20),
                rng.below(10)
            ),
        ),
        1 => (
            "storage".into(),
            format!(
                "Increase the storage allocation for the user: {user} to {} gb",
                rng.below(50) + 1
            ),
        ),
        2 => (
            "New User".into(),
            format!(
                "I'd like to create a new user with the following information:\nusername: {user}{}\npassword: {}\nfirst_name: {}\nlast_name: Smith",
                rng.below(100),
                rng.next() % 100_000_000,
                user
            ),
        ),
        3 => (
            "Help".into(),
            format!(
                "help with: {}",
                rng.pick(&["storage", "manage_users", "printers"])
            ),
        ),
        4 => (
            "Reset my password".into(),
            format!(
                "Please reset my password.\nusername: {user}\nnew_password: {}",
                rng.next() % 1_000_000_000
            ),
        ),
        _ => (
            format!("Re: {} {}", rng.pick(WORDS), rng.pick(WORDS)),
            format!("Dear {sender},\n{}", "see below"),
        ),
    }
}

fn mail(rng: &mut Rng, n: usize) -> String {
    let sender = format!("{}{}@example.com", rng.pick(NAMES), n % 97);
    let (subject, request) = request(rng, &sender);
    let words = 40 + rng.below(80) as usize;
    let body = format!("{request}\n\n{}\n", filler(rng, words));
    let head = format!(
        "Return-Path: <{sender}>\r\nReceived: from out.example.com by mx.example.com (Postfix) with ESMTPS id {n:X}; Sun, 22 Nov 2026 09:00:00 +0000\r\nFrom: {sender}\r\nTo: helpdesk@example.com\r\nSubject: {subject}\r\nDate: Sun, 22 Nov 2026 09:00:00 +0000\r\nMessage-ID: <bench-{n}@example.com>\r\nMIME-Version: 1.0\r\n"
    );
    shaped(rng, n, head, body)
}

/// Quoted-printable of `text`, its line breaks CRLF, its non-ASCII as the
/// Latin-1 byte.
fn quoted_printable(text: &str) -> String {
    let mut qp = String::new();
    for c in text.chars() {
        match c {
            '\n' => qp.push_str("\r\n"),
            '=' => qp.push_str("=3D"),
            c if (c as u32) < 128 => qp.push(c),
            c => {
                let _ = write!(qp, "={:02X}", c as u32);
            }
        }
    }
    qp
}

/// Mail `n` of the corpus: `head` and `body` in the shape `n` picks (plain,
/// multipart/alternative, HTML-only, base64, quoted-printable Latin-1,
/// Windows-1252, a reply with quoted history, an attachment).
fn shaped(rng: &mut Rng, n: usize, mut head: String, body: String) -> String {
    let crlf = |s: &str| s.replace('\n', "\r\n");
    // The body as HTML: between `open` and `close`, `line_break` for each
    // line break.
    let html = |open: &str, line_break: &str, close: &str| {
        format!("{open}{}{close}", body.replace('\n', line_break))
    };
    match n % 8 {
        0 => {
            head + &format!(
                "Content-Type: text/plain; charset=utf-8\r\n\r\n{}",
                crlf(&body)
            )
        }
        1 => {
            let html = html("<html><body><p>", "<br>", "</p></body></html>");
            head + &format!(
                "Content-Type: multipart/alternative; boundary=\"b{n}\"\r\n\r\n--b{n}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{}\r\n--b{n}\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n--b{n}--\r\n",
                crlf(&body)
            )
        }
        2 => {
            let html = html("<div dir=\"ltr\">", "</div><div>", "</div>");
            head + &format!("Content-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n")
        }
        3 => {
            head + &format!(
                "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n",
                base64(body.as_bytes())
            )
        }
        4 => {
            let qp = quoted_printable(&(body + "Gr\u{fc}\u{df}e aus M\u{fc}nchen\n"));
            head + &format!(
                "Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n{qp}"
            )
        }
        5 => {
            head.push_str("Content-Type: text/plain; charset=windows-1252\r\nContent-Transfer-Encoding: 8bit\r\n\r\n");
            head + &crlf(&body.replace("please", "please \u{2013}"))
        }
        6 => {
            let quoted: String = filler(rng, 120)
                .lines()
                .map(|l| format!("> {l}\n"))
                .collect();
            head + &format!(
                "In-Reply-To: <bench-{}@example.com>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{}On Sat, 21 Nov 2026 at 10:00, Helpdesk <helpdesk@example.com> wrote:\r\n{}",
                n.saturating_sub(1),
                crlf(&body),
                crlf(&quoted)
            )
        }
        _ => {
            let attachment: Vec<u8> = (0..20_000).map(|_| rng.next() as u8).collect();
            head + &format!(
                "Content-Type: multipart/mixed; boundary=\"m{n}\"\r\n\r\n--m{n}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{}\r\n--m{n}\r\nContent-Type: application/pdf; name=\"scan.pdf\"\r\nContent-Disposition: attachment; filename=\"scan.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--m{n}--\r\n",
                crlf(&body),
                base64(&attachment)
            )
        }
    }
}

fn big_mail(rng: &mut Rng) -> String {
    let mut out = String::from(
        "From: alice@example.com\r\nTo: helpdesk@example.com\r\nSubject: Increase Storage Quota\r\nMessage-ID: <big@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"big\"\r\n\r\n--big\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello, I'd like to increase my storage quota by 9.3 GB please. The scans are attached.\r\n",
    );
    for i in 0..3 {
        let bytes: Vec<u8> = (0..6_300_000).map(|_| rng.next() as u8).collect();
        let _ = write!(
            out,
            "--big\r\nContent-Type: image/tiff; name=\"scan{i}.tif\"\r\nContent-Disposition: attachment; filename=\"scan{i}.tif\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n",
            base64(&bytes)
        );
    }
    out.push_str("--big--\r\n");
    out
}

/// The sizes the reading benchmarks use: 10 KB, 1 MB, and just under the
/// 10 MiB default limits.message_size (10,485,760 bytes).
const SIZES: &[(&str, usize)] = &[("10k", 10_000), ("1m", 1_000_000), ("10m", 10_400_000)];

const SIZE_HEAD: &str = "From: alice@example.com\r\nTo: helpdesk@example.com\r\nSubject: Increase Storage Quota\r\nMessage-ID: <size@example.com>\r\nMIME-Version: 1.0\r\n";
const SIZE_REQUEST: &str = "Hello, I'd like to increase my storage quota by 9.3 GB please.";

/// Plain text lines of filler words until the mail is `size` bytes.
fn plain_mail(rng: &mut Rng, size: usize) -> String {
    let mut out =
        format!("{SIZE_HEAD}Content-Type: text/plain; charset=utf-8\r\n\r\n{SIZE_REQUEST}\r\n\r\n");
    while out.len() < size {
        out.push_str(&filler(rng, 12).replace('\n', "\r\n"));
    }
    out.truncate(size - 2);
    out.push_str("\r\n");
    out
}

/// An HTML body of paragraphs, line breaks, links, a small table and
/// nested divs (a newsletter's shapes) until the mail is `size` bytes.
fn html_mail(rng: &mut Rng, size: usize) -> String {
    let mut out = format!(
        "{SIZE_HEAD}Content-Type: text/html; charset=utf-8\r\n\r\n<html><head><style>p {{margin: 0}}</style></head><body><p>{SIZE_REQUEST}</p>\r\n"
    );
    let tail = "</body></html>\r\n";
    let mut n = 0u64;
    while out.len() + tail.len() < size {
        let words = filler(rng, 24).replace('\n', " ");
        let block = match n % 4 {
            0 => format!("<p>{words}</p>\r\n"),
            1 => format!("<div><div><span>{words}</span><br></div></div>\r\n"),
            2 => format!(
                "<p><a href=\"https://example.com/{n}\">{}</a> {words}</p>\r\n",
                rng.pick(WORDS)
            ),
            _ => format!(
                "<table><tr><td>{}</td><td>{}</td></tr><tr><td colspan=\"2\">{words}</td></tr></table>\r\n",
                rng.pick(WORDS),
                rng.pick(WORDS)
            ),
        };
        n += 1;
        out.push_str(&block);
    }
    let keep = size - tail.len();
    // Cut at a tag boundary so the mail stays well-formed HTML.
    let cut = out[..keep.min(out.len())]
        .rfind('\n')
        .map_or(keep, |i| i + 1);
    out.truncate(cut);
    while out.len() + tail.len() < size {
        out.push(' ');
    }
    out + tail
}

/// A short text part and a base64 PDF-like attachment filling the mail
/// to `size` bytes.
fn attachment_mail(rng: &mut Rng, size: usize) -> String {
    let head = format!(
        "{SIZE_HEAD}Content-Type: multipart/mixed; boundary=\"att\"\r\n\r\n--att\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{SIZE_REQUEST} The scan is attached.\r\n--att\r\nContent-Type: application/pdf; name=\"scan.pdf\"\r\nContent-Disposition: attachment; filename=\"scan.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    );
    let tail = "\r\n--att--\r\n";
    // base64 with CRLF every 76 characters: 78 bytes of mail per 57 bytes.
    let room = size.saturating_sub(head.len() + tail.len());
    let mut bytes = b"%PDF-1.7\n".to_vec();
    bytes.extend((0..(room / 78 * 57).saturating_sub(9)).map(|_| rng.next() as u8));
    let mut out = head + &base64(&bytes) + tail;
    // The rest as the epilogue after the closing boundary, which readers
    // ignore.
    while out.len() < size {
        out.push_str(if out.len() + 1 == size { " " } else { "\r\n" });
    }
    out
}

fn size_mails(dir: &Path) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    // A seed of its own, so the rest of the corpus stays as it was.
    let mut rng = Rng(0x5EED_1234_ABCD_0012);
    for (label, size) in SIZES {
        for (kind, mail) in [
            ("plain", plain_mail(&mut rng, *size)),
            ("html", html_mail(&mut rng, *size)),
            ("attachment", attachment_mail(&mut rng, *size)),
        ] {
            fs::write(dir.join(format!("{kind}-{label}.eml")), mail)?;
        }
    }
    Ok(())
}

fn large_folder(dir: &Path, rng: &mut Rng) -> std::io::Result<()> {
    for sub in ["phrasebooks", "playbooks", "help_templates"] {
        fs::create_dir_all(dir.join(sub))?;
    }
    let mut keywords = String::from("# 1,000 request types, 10,000 phrases\n");
    // The shipped types come first so that typical mail still classifies.
    keywords.push_str(
        &fs::read_to_string("keywords.txt")?
            .lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n"),
    );
    keywords.push('\n');
    for name in [
        "help",
        "storage",
        "manage_account",
        "query_account",
        "manage_users",
    ] {
        fs::copy(
            format!("phrasebooks/{name}_phrases.txt"),
            dir.join(format!("phrasebooks/{name}_phrases.txt")),
        )?;
        if name != "help" {
            fs::copy(
                format!("playbooks/{name}.yaml"),
                dir.join(format!("playbooks/{name}.yaml")),
            )?;
        }
        fs::copy(
            format!("help_templates/{name}_help.txt"),
            dir.join(format!("help_templates/{name}_help.txt")),
        )?;
    }
    for t in 5..1000 {
        let name = format!("capability_{t:04}");
        let _ = writeln!(keywords, "*{name}*");
        let phrases: Vec<String> = (0..10)
            .map(|p| format!("'kw{t}x{p} {}'", rng.pick(WORDS)))
            .collect();
        let _ = writeln!(keywords, "{}", phrases.join(" "));
        fs::write(
            dir.join(format!("phrasebooks/{name}_phrases.txt")),
            "*targets*\nusername: user:\n*verbs_positive*\nadd new\n*verbs_negative*\nremove delete\n",
        )?;
        fs::write(
            dir.join(format!("playbooks/{name}.yaml")),
            "- hosts: all\n  gather_facts: false\n  tasks: []\n",
        )?;
        fs::write(
            dir.join(format!("help_templates/{name}_help.txt")),
            format!("Capability {t}.\n"),
        )?;
    }
    fs::write(dir.join("keywords.txt"), keywords)?;
    fs::write(
        dir.join("inventory"),
        "localhost ansible_connection=local\n",
    )?;
    fs::write(dir.join("config.yaml"), CONFIG)
}

const CONFIG: &str = "helpdesk_dir: .\nauthentication: {authserv_id: [mx.example.com], require: none}\naccess:\n  - {requests: ['*'], senders: ['*']}\n";

fn default_folder(dir: &Path) -> std::io::Result<()> {
    for sub in ["phrasebooks", "playbooks", "help_templates"] {
        fs::create_dir_all(dir.join(sub))?;
        for entry in fs::read_dir(sub)? {
            let entry = entry?;
            fs::copy(entry.path(), dir.join(sub).join(entry.file_name()))?;
        }
    }
    fs::copy("keywords.txt", dir.join("keywords.txt"))?;
    fs::copy("inventory", dir.join("inventory"))?;
    fs::write(
        dir.join("config-32mib.yaml"),
        format!("{CONFIG}limits: {{message_size: 32MiB}}\n"),
    )?;
    fs::write(dir.join("config.yaml"), CONFIG)
}

fn main() -> std::io::Result<()> {
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "target/bench-corpus".into());
    let out = Path::new(&out);
    let maildir = out.join("maildir");
    for sub in ["cur", "new", "tmp"] {
        fs::create_dir_all(maildir.join(sub))?;
    }
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    let mut mbox = String::new();
    for n in 0..10_000 {
        let text = mail(&mut rng, n);
        fs::write(maildir.join("cur").join(format!("{n:05}.bench:2,S")), &text)?;
        let _ = write!(
            mbox,
            "From bench@example.com Sun Nov 22 09:00:00 2026\n{}\n",
            text.replace("\r\n", "\n").replace("\nFrom ", "\n>From ")
        );
    }
    fs::write(out.join("corpus.mbox"), mbox)?;
    fs::write(
        out.join("typical.eml"),
        "From: alice@example.com\r\nTo: helpdesk@example.com\r\nSubject: Increase Storage Quota\r\nMessage-ID: <typical@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello, I'd like to increase my storage quota by 9.3 GB please.\r\n\r\nThanks,\r\nAlice\r\n",
    )?;
    fs::write(out.join("big.eml"), big_mail(&mut rng))?;
    size_mails(&out.join("sizes"))?;
    large_folder(&out.join("large"), &mut rng)?;
    default_folder(&out.join("default"))?;
    eprintln!("corpus written to {}", out.display());
    Ok(())
}
