//! The CPU cost of the encryption policy alone, for instruction counts under callgrind
//! (`bench/policy-cost.sh` compares two commits with it).
//!
//! `policy_cost EML PAYLOAD_KIB ITERATIONS`: fills EML's placeholders, grows its armored
//! payload to about PAYLOAD_KIB KiB (0 keeps it as it is) with a valid SEIPD packet, and runs
//! `check_outgoing` and `check_incoming` ITERATIONS times each; prints the verdicts once.
#![forbid(unsafe_code)]

use std::io::Write;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use filtermail::{Envelope, PolicyVerdict, check_incoming, check_outgoing};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const FROM: &str = "alice@chat.example.org";
const TO: &str = "bob@chat.example.org";

/// An armored `PKESK SEIPD` message of about `kib` KiB, in 64-character lines.
fn armored(kib: usize) -> String {
    let body_len = kib * 1024 * 3 / 4;
    // New-format SEIPD packet with a five-octet length.
    let mut packets = vec![0xC1, 3, 3, 1, 1, 0xD2, 0xFF];
    packets.extend_from_slice(&u32::try_from(body_len).unwrap_or(u32::MAX).to_be_bytes());
    packets.extend((0..body_len).map(|i| u8::try_from(i % 251).unwrap_or(0)));
    let b64 = STANDARD.encode(&packets);
    let mut out = String::from("-----BEGIN PGP MESSAGE-----\r\n\r\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push_str("\r\n");
    }
    out.push_str("-----END PGP MESSAGE-----\r\n");
    out
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [eml, kib, iterations] = args.as_slice() else {
        return Err("usage: policy_cost EML PAYLOAD_KIB ITERATIONS".into());
    };
    let kib: usize = kib.parse()?;
    let iterations: usize = iterations.parse()?;
    let mut text = std::fs::read_to_string(eml)?
        .replace('\r', "")
        .replace("{from_addr}", FROM)
        .replace("{to_addr}", TO)
        .replace("{subject}", "x")
        .replace('\n', "\r\n");
    if kib > 0 {
        let start = text.find("-----BEGIN PGP MESSAGE-----").ok_or("no armor")?;
        let end = text
            .find("-----END PGP MESSAGE-----\r\n")
            .ok_or("no armor end")?
            + "-----END PGP MESSAGE-----\r\n".len();
        text.replace_range(start..end, &armored(kib));
    }
    let message = text.into_bytes();
    let dir = std::env::temp_dir().join(format!("policy-cost-{}", std::process::id()));
    std::fs::create_dir_all(dir.join(TO))?;
    std::fs::write(dir.join(TO).join("enforceE2EEincoming"), b"")?;
    let env = Envelope {
        mail_from: FROM.into(),
        rcpt_to: vec![TO.into()],
    };
    let mut accepted = 0usize;
    for _ in 0..iterations {
        accepted += usize::from(matches!(
            check_outgoing(&env, &message),
            PolicyVerdict::Accept(_)
        ));
        accepted += usize::from(matches!(
            check_incoming(&env, &message, &dir),
            PolicyVerdict::Accept(_)
        ));
    }
    std::fs::remove_dir_all(&dir)?;
    writeln!(
        std::io::stdout(),
        "{} bytes, {accepted} of {} checks accepted",
        message.len(),
        2 * iterations
    )?;
    Ok(())
}
