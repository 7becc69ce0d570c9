use super::*;

const ENCRYPTED: &str = "From: <a@x.org>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\";\r\n\tboundary=\"B\"\r\n\r\n--B\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\r\n--B\r\nContent-Type: application/octet-stream; name=\"encrypted.asc\"\r\n\r\n-----BEGIN PGP MESSAGE-----\r\n\r\nwcDMA1234\r\n-----END PGP MESSAGE-----\r\n\r\n--B--\r\n";

#[test]
fn reads_a_canonical_message() {
    let msg = read(ENCRYPTED.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    assert!(msg.top.content_type.is("multipart", "encrypted"));
    assert_eq!(msg.parts.len(), 2);
    assert_eq!(
        msg.parts.first().map(|p| p.body),
        Some(&b"Version: 1\r\n"[..])
    );
    assert!(msg.parts.get(1).is_some_and(
        |p| p.body.starts_with(b"-----BEGIN") && p.body.ends_with(b"MESSAGE-----\r\n")
    ));
}

#[test]
fn structure_headers_once_per_entity() {
    for (from, to) in [
        (
            "MIME-Version: 1.0\r\n",
            "MIME-Version: 1.0\r\nMIME-Version: 1.0\r\n",
        ),
        (
            "MIME-Version: 1.0\r\n",
            "MIME-Version: 1.0\r\ncontent-type: text/plain\r\n",
        ),
        (
            "From: <a@x.org>\r\n",
            "From: <a@x.org>\r\nFROM: <b@x.org>\r\n",
        ),
        (
            "Content-Type: application/pgp-encrypted\r\n",
            "Content-Type: application/pgp-encrypted\r\nContent-Transfer-Encoding: 7bit\r\nContent-Transfer-Encoding: base64\r\n",
        ),
        ("MIME-Version: 1.0\r\n", "MIME-Version: 1.0 (x)\r\n"),
        ("MIME-Version: 1.0\r\n", "MIME-Version: 2.0\r\n"),
    ] {
        let msg = ENCRYPTED.replacen(from, to, 1);
        assert_ne!(msg, ENCRYPTED);
        assert!(read(msg.as_bytes()).is_err(), "{to:?}");
    }
}

#[test]
fn nested_multiparts_are_not_canonical() {
    let msg = ENCRYPTED.replacen(
        "Content-Type: application/pgp-encrypted\r\n",
        "Content-Type: multipart/mixed; boundary=\"C\"\r\n\r\n--C\r\n\r\nx\r\n--C--\r\n",
        1,
    );
    assert_eq!(read(msg.as_bytes()).map(|_| ()), Err("nested multipart"));
}
