fn main() {
    for f in std::env::args().skip(1) {
        let d = std::fs::read(&f).unwrap();
        match threering::sip::parse(bytes::Bytes::from(d)) {
            Ok(threering::sip::Message::Request(r)) => println!("{f}: OK {} {:?}", r.method, threering::sip::validate::check_request(&r, &Default::default()).err().map(|r| (r.status, r.reason))),
            Ok(_) => println!("{f}: OK response"),
            Err(e) => println!("{f}: ERR {}", e.reason_phrase()),
        }
    }
}
