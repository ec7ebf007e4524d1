//! Tests of digest authentication: the RFC 2617 and RFC 7616 examples, round trips,
//! replay, expiry, tampering, malformed input and the bounded nonce table.

use super::*;

const REALM: &str = "threering.test";
const URI: &str = "sip:threering.test";
const SECRET: [u8; 32] = [7; 32];
const TTL: Duration = Duration::from_secs(300);

fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

fn server() -> DigestServer {
    DigestServer::new(REALM, SECRET, TTL)
}

fn users(name: &str) -> Option<String> {
    (name == "alice").then(|| "s3cret".to_string())
}

fn challenge_of(server: &DigestServer, alg: Algorithm, now: SystemTime) -> Challenge {
    parse_challenge(&server.challenge(alg, false, now)).expect("own challenge parses")
}

fn answer(ch: &Challenge, user: &str, password: &str, nc: u32) -> String {
    authorization_for(ch, "REGISTER", URI, user, password, "c0ffee42", nc)
}

fn verify(server: &DigestServer, auth: &str, now: SystemTime) -> Result<Verified, AuthError> {
    server.verify("REGISTER", auth, users, now)
}

#[test]
fn rfc2617_md5_example() {
    let inputs = DigestInputs {
        algorithm: Algorithm::Md5,
        username: "Mufasa",
        realm: "testrealm@host.com",
        password: "Circle Of Life",
        method: "GET",
        uri: "/dir/index.html",
        nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093",
        qop_auth: Some(("00000001", "0a4f113b")),
    };
    assert_eq!(inputs.response(), "6629fae49393a05397450978507c4ef1");
}

#[test]
fn rfc2617_example_header_parses_and_client_matches() {
    let header = "Digest username=\"Mufasa\",\r\n realm=\"testrealm@host.com\",\r\n \
        nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\",\r\n uri=\"/dir/index.html\",\r\n \
        qop=auth,\r\n nc=00000001,\r\n cnonce=\"0a4f113b\",\r\n \
        response=\"6629fae49393a05397450978507c4ef1\",\r\n \
        opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"";
    let creds = parse_credentials(header).unwrap();
    assert_eq!(creds.username, "Mufasa");
    assert_eq!(creds.realm, "testrealm@host.com");
    assert_eq!(creds.uri, "/dir/index.html");
    assert_eq!(creds.qop.as_deref(), Some("auth"));
    assert_eq!(creds.nc.as_deref(), Some("00000001"));
    assert_eq!(creds.cnonce.as_deref(), Some("0a4f113b"));
    assert_eq!(creds.algorithm, None);
    assert_eq!(
        creds.opaque.as_deref(),
        Some("5ccc069c403ebaf9f0171e9517f40e41")
    );

    let ch = parse_challenge(
        "Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", \
         nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", \
         opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
    )
    .unwrap();
    assert!(ch.qop_auth);
    assert_eq!(ch.algorithm, Algorithm::Md5);
    let auth = authorization_for(
        &ch,
        "GET",
        "/dir/index.html",
        "Mufasa",
        "Circle Of Life",
        "0a4f113b",
        1,
    );
    let back = parse_credentials(&auth).unwrap();
    assert_eq!(back.response, "6629fae49393a05397450978507c4ef1");
    assert_eq!(back.nc.as_deref(), Some("00000001"));
    assert_eq!(back.opaque, ch.opaque);
}

#[test]
fn rfc7616_sha256_example() {
    let inputs = DigestInputs {
        algorithm: Algorithm::Sha256,
        username: "Mufasa",
        realm: "http-auth@example.org",
        password: "Circle of Life",
        method: "GET",
        uri: "/dir/index.html",
        nonce: "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
        qop_auth: Some(("00000001", "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ")),
    };
    assert_eq!(
        inputs.response(),
        "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    );
}

#[test]
fn rfc7616_challenge_and_client_answer() {
    let ch = parse_challenge(
        "Digest\n    realm=\"http-auth@example.org\",\n    qop=\"auth, auth-int\",\n    \
         algorithm=SHA-256,\n    nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\",\n    \
         opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"",
    )
    .unwrap();
    assert_eq!(ch.algorithm, Algorithm::Sha256);
    assert!(ch.qop_auth);
    assert!(!ch.stale);
    let auth = authorization_for(
        &ch,
        "GET",
        "/dir/index.html",
        "Mufasa",
        "Circle of Life",
        "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
        1,
    );
    let creds = parse_credentials(&auth).unwrap();
    assert_eq!(
        creds.response,
        "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    );
    assert_eq!(creds.algorithm.as_deref(), Some("SHA-256"));
}

#[test]
fn round_trip_md5_and_sha256() {
    let server = server();
    for alg in [Algorithm::Md5, Algorithm::Sha256] {
        let ch = challenge_of(&server, alg, t0());
        assert_eq!(ch.realm, REALM);
        assert!(ch.qop_auth);
        assert_eq!(ch.algorithm, alg);
        let auth = answer(&ch, "alice", "s3cret", 1);
        let ok = verify(&server, &auth, t0()).unwrap();
        assert_eq!(
            ok,
            Verified {
                username: "alice".into(),
                algorithm: alg
            }
        );
    }
}

#[test]
fn challenge_format() {
    let server = server();
    let plain = server.challenge(Algorithm::Md5, false, t0());
    assert!(plain.starts_with("Digest realm=\"threering.test\", nonce=\""));
    assert!(plain.ends_with(", algorithm=MD5, qop=\"auth\""));
    let stale = server.challenge(Algorithm::Sha256, true, t0());
    assert!(stale.contains("algorithm=SHA-256"));
    assert!(stale.ends_with(", stale=true"));
    assert!(parse_challenge(&stale).unwrap().stale);
    // Fresh randomness in every nonce.
    assert_ne!(
        challenge_of(&server, Algorithm::Md5, t0()).nonce,
        challenge_of(&server, Algorithm::Md5, t0()).nonce
    );
}

#[test]
fn wrong_password_is_wrong_response() {
    let server = server();
    let ch = challenge_of(&server, Algorithm::Md5, t0());
    let auth = answer(&ch, "alice", "guess", 1);
    assert_eq!(verify(&server, &auth, t0()), Err(AuthError::WrongResponse));
    // A failure is not recorded: the right answer with nc=1 still works.
    let auth = answer(&ch, "alice", "s3cret", 1);
    assert!(verify(&server, &auth, t0()).is_ok());
}

#[test]
fn unknown_user() {
    let server = server();
    let ch = challenge_of(&server, Algorithm::Sha256, t0());
    let auth = answer(&ch, "mallory", "s3cret", 1);
    assert_eq!(verify(&server, &auth, t0()), Err(AuthError::UnknownUser));
    // Even the dummy password does not let an unknown user in.
    let auth = answer(&ch, "mallory", DUMMY_PASSWORD, 1);
    assert_eq!(verify(&server, &auth, t0()), Err(AuthError::UnknownUser));
}

/// An unknown user costs the same work as a known one with a wrong password, so timing
/// does not tell which names exist. Single calls, interleaved (alternating which goes
/// first), compared by their lower quartiles, which other tests running meanwhile
/// disturb least.
#[test]
fn unknown_users_take_as_long_as_wrong_passwords() {
    let server = server();
    let ch = challenge_of(&server, Algorithm::Md5, t0());
    // Same lengths, so both hash the same number of bytes.
    let known = answer(&ch, "alice", "guess1", 1);
    let unknown = answer(&ch, "bobby", "guess1", 1);
    let time = |auth: &str, want: AuthError| {
        let started = std::time::Instant::now();
        let got = verify(&server, auth, t0());
        let took = started.elapsed();
        assert_eq!(got, Err(want));
        took
    };
    let (mut known_times, mut unknown_times) = (Vec::new(), Vec::new());
    for i in 0..4000 {
        if i % 2 == 0 {
            known_times.push(time(&known, AuthError::WrongResponse));
            unknown_times.push(time(&unknown, AuthError::UnknownUser));
        } else {
            unknown_times.push(time(&unknown, AuthError::UnknownUser));
            known_times.push(time(&known, AuthError::WrongResponse));
        }
    }
    known_times.sort();
    unknown_times.sort();
    let quartile = known_times.len() / 4;
    let (known_q, unknown_q) = (known_times[quartile], unknown_times[quartile]);
    let ratio = unknown_q.as_secs_f64() / known_q.as_secs_f64();
    assert!(
        (0.8..1.25).contains(&ratio),
        "unknown/known lower-quartile time ratio {ratio:.2} (known {known_q:?}, unknown {unknown_q:?})"
    );
}

#[test]
fn replayed_nc_is_rejected_and_increasing_nc_accepted() {
    let server = server();
    let ch = challenge_of(&server, Algorithm::Md5, t0());
    let first = answer(&ch, "alice", "s3cret", 1);
    assert!(verify(&server, &first, t0()).is_ok());
    assert_eq!(
        verify(&server, &first, t0()),
        Err(AuthError::Replay { nc: 1 })
    );
    assert!(verify(&server, &answer(&ch, "alice", "s3cret", 2), t0()).is_ok());
    assert!(verify(&server, &answer(&ch, "alice", "s3cret", 7), t0()).is_ok());
    assert_eq!(
        verify(&server, &answer(&ch, "alice", "s3cret", 5), t0()),
        Err(AuthError::Replay { nc: 5 })
    );
    assert_eq!(
        verify(&server, &answer(&ch, "alice", "s3cret", 7), t0()),
        Err(AuthError::Replay { nc: 7 })
    );
    assert!(verify(&server, &answer(&ch, "alice", "s3cret", 8), t0()).is_ok());
    assert_eq!(server.tracked_nonces(), 1);
}

#[test]
fn nc_zero_and_bad_nc_are_malformed() {
    let server = server();
    let ch = challenge_of(&server, Algorithm::Md5, t0());
    let zero = answer(&ch, "alice", "s3cret", 0);
    assert!(matches!(
        verify(&server, &zero, t0()),
        Err(AuthError::Malformed { .. })
    ));
    let short = answer(&ch, "alice", "s3cret", 1).replace("nc=00000001", "nc=1");
    assert!(matches!(
        verify(&server, &short, t0()),
        Err(AuthError::Malformed { .. })
    ));
    let signed = answer(&ch, "alice", "s3cret", 1).replace("nc=00000001", "nc=+0000001");
    assert!(matches!(
        verify(&server, &signed, t0()),
        Err(AuthError::Malformed { .. })
    ));
}

#[test]
fn qopless_rfc2069_answer_is_single_use() {
    let server = server();
    let mut ch = challenge_of(&server, Algorithm::Md5, t0());
    ch.qop_auth = false;
    let auth = answer(&ch, "alice", "s3cret", 1);
    assert!(!auth.contains("qop"));
    assert!(verify(&server, &auth, t0()).is_ok());
    assert_eq!(
        verify(&server, &auth, t0()),
        Err(AuthError::Replay { nc: 0 })
    );
    // Switching to qop=auth on the same nonce is a replay too.
    ch.qop_auth = true;
    assert_eq!(
        verify(&server, &answer(&ch, "alice", "s3cret", 1), t0()),
        Err(AuthError::Replay { nc: 1 })
    );
}

#[test]
fn qop_requires_nc_and_cnonce() {
    let server = server();
    let ch = challenge_of(&server, Algorithm::Md5, t0());
    let auth = answer(&ch, "alice", "s3cret", 1);
    let no_nc = auth.replace(", nc=00000001", "");
    assert_eq!(verify(&server, &no_nc, t0()), Err(AuthError::missing("nc")));
    let no_cnonce = auth.replace(", cnonce=\"c0ffee42\"", "");
    assert_eq!(
        verify(&server, &no_cnonce, t0()),
        Err(AuthError::missing("cnonce"))
    );
}

#[test]
fn expired_nonce_is_stale() {
    let server = server();
    let ch = challenge_of(&server, Algorithm::Md5, t0());
    let late = t0() + TTL + Duration::from_secs(1);
    assert_eq!(
        verify(&server, &answer(&ch, "alice", "s3cret", 1), late),
        Err(AuthError::StaleNonce)
    );
    assert!(AuthError::StaleNonce.is_stale());
    // A wrong password on an expired nonce must not claim stale=true.
    assert_eq!(
        verify(&server, &answer(&ch, "alice", "nope", 1), late),
        Err(AuthError::WrongResponse)
    );
    // Just inside the lifetime it is still fine.
    let almost = t0() + TTL - Duration::from_secs(1);
    assert!(verify(&server, &answer(&ch, "alice", "s3cret", 1), almost).is_ok());
}

#[test]
fn tampered_nonce_is_bad() {
    let server = server();
    let ch = challenge_of(&server, Algorithm::Md5, t0());
    assert_eq!(ch.nonce.len(), NONCE_LEN * 2);
    // Flip one hex digit in the expiry, the random part and the tag. The
    // response is recomputed for the tampered nonce so only the signature
    // can catch it; extending the expiry is the interesting attack.
    for pos in [14, 15, 20, 40, 63] {
        let mut bytes = ch.nonce.clone().into_bytes();
        bytes[pos] = if bytes[pos] == b'f' { b'e' } else { b'f' };
        let tampered = Challenge {
            nonce: String::from_utf8(bytes).unwrap(),
            ..ch.clone()
        };
        let auth = answer(&tampered, "alice", "s3cret", 1);
        assert_eq!(
            verify(&server, &auth, t0()),
            Err(AuthError::BadNonce),
            "pos {pos}"
        );
    }
    for nonce in [
        String::new(),
        "dcd98b7102dd2f0e8b11d0f600bfb0c093".to_string(),
        ch.nonce.to_ascii_uppercase(),
        format!("{}00", ch.nonce),
        ch.nonce[..62].to_string(),
        format!("{}zz", &ch.nonce[..62]),
    ] {
        let bad = Challenge {
            nonce,
            ..ch.clone()
        };
        let auth = answer(&bad, "alice", "s3cret", 1);
        assert_eq!(verify(&server, &auth, t0()), Err(AuthError::BadNonce));
    }
    // A nonce signed with another secret is not ours.
    let other = DigestServer::new(REALM, [8; 32], TTL);
    let foreign = challenge_of(&other, Algorithm::Md5, t0());
    let auth = answer(&foreign, "alice", "s3cret", 1);
    assert_eq!(verify(&server, &auth, t0()), Err(AuthError::BadNonce));
    assert!(verify(&other, &auth, t0()).is_ok());
}

#[test]
fn wrong_realm() {
    let server = server();
    let mut ch = challenge_of(&server, Algorithm::Md5, t0());
    ch.realm = "elsewhere.test".into();
    let auth = answer(&ch, "alice", "s3cret", 1);
    assert_eq!(verify(&server, &auth, t0()), Err(AuthError::WrongRealm));
}

#[test]
fn non_digest_scheme() {
    let server = server();
    // RFC 4475 §3.3.7.
    assert_eq!(
        verify(&server, "NoOneKnowsThisScheme opaque-data=here", t0()),
        Err(AuthError::NotDigest {
            scheme: "NoOneKnowsThisScheme".into()
        })
    );
    assert_eq!(
        parse_credentials("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
        Err(AuthError::NotDigest {
            scheme: "Basic".into()
        })
    );
    assert!(matches!(
        parse_challenge("Basic realm=\"x\""),
        Err(AuthError::NotDigest { .. })
    ));
}

#[test]
fn unsupported_algorithm_and_qop() {
    let server = server();
    let ch = challenge_of(&server, Algorithm::Md5, t0());
    let auth = answer(&ch, "alice", "s3cret", 1);
    let sess = auth.replace("algorithm=MD5", "algorithm=MD5-sess");
    assert_eq!(
        verify(&server, &sess, t0()),
        Err(AuthError::UnsupportedAlgorithm {
            algorithm: "MD5-sess".into()
        })
    );
    let sha_sess = auth.replace("algorithm=MD5", "algorithm=SHA-256-sess");
    assert!(matches!(
        verify(&server, &sha_sess, t0()),
        Err(AuthError::UnsupportedAlgorithm { .. })
    ));
    let int = auth.replace("qop=auth", "qop=auth-int");
    assert_eq!(
        verify(&server, &int, t0()),
        Err(AuthError::UnsupportedQop {
            qop: "auth-int".into()
        })
    );
    assert!(matches!(
        parse_challenge("Digest realm=\"r\", nonce=\"n\", algorithm=SHA-512-256"),
        Err(AuthError::UnsupportedAlgorithm { .. })
    ));
    assert!(matches!(
        parse_challenge("Digest realm=\"r\", nonce=\"n\", qop=\"auth-int\""),
        Err(AuthError::UnsupportedQop { .. })
    ));
}

#[test]
fn algorithm_tokens() {
    assert_eq!("md5".parse::<Algorithm>(), Ok(Algorithm::Md5));
    assert_eq!("sha-256".parse::<Algorithm>(), Ok(Algorithm::Sha256));
    assert_eq!("SHA-256".parse::<Algorithm>(), Ok(Algorithm::Sha256));
    assert!("SHA256".parse::<Algorithm>().is_err());
    assert_eq!(Algorithm::Md5.to_string(), "MD5");
    assert_eq!(Algorithm::Sha256.to_string(), "SHA-256");
    assert_eq!(Algorithm::default(), Algorithm::Md5);
}

#[test]
fn parsing_is_case_insensitive_and_lenient_about_whitespace() {
    let server = server();
    let ch = challenge_of(&server, Algorithm::Sha256, t0());
    let auth = answer(&ch, "alice", "s3cret", 1)
        .replacen("Digest", "  dIgEsT", 1)
        .replace("username=", "UserName =\t")
        .replace("algorithm=SHA-256", "ALGORITHM=sha-256")
        .replace("qop=auth", "QOP=\"AUTH\"")
        .replace(", ", " ,\r\n ");
    let ok = verify(&server, &auth, t0()).unwrap();
    assert_eq!(ok.algorithm, Algorithm::Sha256);
    // Upper-case response hex is tolerated.
    let creds = parse_credentials(&answer(&ch, "alice", "s3cret", 2)).unwrap();
    let upper = answer(&ch, "alice", "s3cret", 2)
        .replace(&creds.response, &creds.response.to_ascii_uppercase());
    assert!(verify(&server, &upper, t0()).is_ok());
}

#[test]
fn quoted_string_escapes_round_trip() {
    let creds =
        parse_credentials(r#"Digest username="a\"b\\c", realm="r", nonce="n", uri="u", response="x", extra=tok, other="ignored""#)
            .unwrap();
    assert_eq!(creds.username, "a\"b\\c");
    let server = DigestServer::new("re\"alm\\", SECRET, TTL);
    let ch = challenge_of(&server, Algorithm::Md5, t0());
    assert_eq!(ch.realm, "re\"alm\\");
    let auth = authorization_for(&ch, "INVITE", URI, "we\"ird\\", "pw", "c", 1);
    let ok = server
        .verify(
            "INVITE",
            &auth,
            |u| (u == "we\"ird\\").then(|| "pw".into()),
            t0(),
        )
        .unwrap();
    assert_eq!(ok.username, "we\"ird\\");
    // The method is part of the digest.
    let auth = authorization_for(&ch, "INVITE", URI, "we\"ird\\", "pw", "c", 2);
    assert_eq!(
        server.verify("BYE", &auth, |_| Some("pw".into()), t0()),
        Err(AuthError::WrongResponse)
    );
}

#[test]
fn missing_and_duplicate_params_are_malformed() {
    let full = [
        ("username", "\"u\""),
        ("realm", "\"r\""),
        ("nonce", "\"n\""),
        ("uri", "\"sip:x\""),
        ("response", "\"00\""),
    ];
    for skip in 0..full.len() {
        let header = format!(
            "Digest {}",
            full.iter()
                .enumerate()
                .filter(|&(i, _)| i != skip)
                .map(|(_, (k, v))| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        assert_eq!(
            parse_credentials(&header),
            Err(AuthError::missing(full[skip].0)),
            "{header}"
        );
    }
    let dup =
        "Digest username=\"u\", realm=\"r\", nonce=\"n\", uri=\"x\", response=\"0\", Realm=\"r\"";
    assert!(matches!(
        parse_credentials(dup),
        Err(AuthError::Malformed { reason }) if reason.contains("duplicate")
    ));
    let dup_unknown =
        "Digest username=\"u\", realm=\"r\", nonce=\"n\", uri=\"x\", response=\"0\", x=1, x=2";
    assert!(matches!(
        parse_credentials(dup_unknown),
        Err(AuthError::Malformed { .. })
    ));
}

#[test]
fn garbage_gives_errors_not_panics() {
    let long = format!("Digest username=\"{}\"", "a".repeat(100_000));
    let cases = [
        "",
        "   ",
        "Digest",
        "Digest ",
        "Digest,username=\"u\"",
        "Digest =",
        "Digest username",
        "Digest username=",
        "Digest username=\"",
        "Digest username=\"abc",
        "Digest username=\"abc\\",
        "Digest username=\"abc\\\"",
        "Digest username=\"a\"\"b\"",
        "Digest username=a b",
        "Digest username=\"a\" realm=\"b\"",
        "Digest ,,,,",
        "Digest ü=1",
        "Digest username=\"ü\\ü\"",
        "Digest username=é, realm=\u{0}",
        "\"Digest\"",
        "=Digest",
        "Digest\u{0}",
        "\u{feff}Digest username=\"u\"",
        long.as_str(),
    ];
    let server = server();
    for case in cases {
        assert!(parse_credentials(case).is_err(), "{case:?}");
        let _ = parse_challenge(case);
        assert!(verify(&server, case, t0()).is_err(), "{case:?}");
    }
    assert_eq!(
        parse_credentials("Digest username=\"abc"),
        Err(AuthError::malformed("unterminated quoted string"))
    );
}

#[test]
fn truncations_of_a_valid_header_never_panic() {
    for alg in [Algorithm::Md5, Algorithm::Sha256] {
        let server = server();
        let mut ch = challenge_of(&server, alg, t0());
        ch.opaque = Some("op\"aque".into());
        let auth = answer(&ch, "alice", "s3cret", 1);
        // Cutting off the whole trailing opaque parameter (which the
        // server does not check) leaves a valid header; nothing else does.
        let without_opaque = auth.find(", opaque=").unwrap();
        for (i, _) in auth.char_indices() {
            let prefix = &auth[..i];
            let _ = parse_credentials(prefix);
            let _ = parse_challenge(prefix);
            let result = verify(&server, prefix, t0());
            if i == without_opaque || i == without_opaque + 1 {
                assert!(result.is_ok() || result == Err(AuthError::Replay { nc: 1 }));
            } else {
                assert!(result.is_err(), "{prefix:?}");
            }
            let suffix = &auth[i..];
            let _ = parse_challenge(suffix);
            if i > 0 {
                assert!(verify(&server, suffix, t0()).is_err(), "{suffix:?}");
            }
        }
        // A fresh server with the same secret has no replay state yet.
        let fresh = DigestServer::new(REALM, SECRET, TTL);
        assert!(verify(&fresh, &auth, t0()).is_ok());
    }
}

#[test]
fn nc_table_stays_bounded_at_the_real_capacity() {
    let mut table = NcTable::new(NC_TABLE_CAPACITY);
    let now = 1_000;
    for i in 0..(NC_TABLE_CAPACITY as u64 + 500) {
        let mut key = [0u8; NONCE_LEN];
        key[..8].copy_from_slice(&i.to_be_bytes());
        // Every entry is live; expiry grows with i.
        assert_eq!(table.record(key, now + 10 + i, now, Some(1)), Ok(()));
    }
    assert_eq!(table.len(), NC_TABLE_CAPACITY);
    assert_eq!(table.by_expiry.len(), NC_TABLE_CAPACITY);
}

#[test]
fn nc_table_evicts_soonest_expiring_and_forgotten_nonces_are_stale() {
    let mut table = NcTable::new(4);
    let now = 1_000;
    let key = |i: u8| [i; NONCE_LEN];
    for i in 0..10u8 {
        assert_eq!(
            table.record(key(i), now + 100 + u64::from(i), now, Some(1)),
            Ok(())
        );
    }
    assert_eq!(table.len(), 4);
    // The newest four survive with their counters intact.
    assert_eq!(
        table.record(key(9), now + 109, now, Some(1)),
        Err(AuthError::Replay { nc: 1 })
    );
    assert_eq!(table.record(key(9), now + 109, now, Some(2)), Ok(()));
    // An evicted nonce must not become replayable: it is stale instead.
    assert_eq!(
        table.record(key(0), now + 100, now, Some(1)),
        Err(AuthError::StaleNonce)
    );
    // A nonce expiring before every tracked one is the one to drop when
    // full: it is refused and nothing tracked is forgotten.
    assert_eq!(
        table.record(key(70), now + 106, now, Some(1)),
        Err(AuthError::StaleNonce)
    );
    assert_eq!(table.len(), 4);
    assert_eq!(
        table.record(key(6), now + 106, now, Some(1)),
        Err(AuthError::Replay { nc: 1 })
    );
    // A brand-new nonce that outlives everything forgotten is fine.
    assert_eq!(table.record(key(50), now + 500, now, None), Ok(()));
    assert_eq!(table.len(), 4);
    // Once everything has expired the table empties itself.
    assert_eq!(table.record(key(60), now + 1_000, now + 600, None), Ok(()));
    assert_eq!(table.len(), 1);
}

#[test]
fn expired_entries_are_dropped_from_the_server_table() {
    let server = DigestServer::new(REALM, SECRET, Duration::from_secs(10));
    for _ in 0..3 {
        let ch = challenge_of(&server, Algorithm::Md5, t0());
        assert!(verify(&server, &answer(&ch, "alice", "s3cret", 1), t0()).is_ok());
    }
    assert_eq!(server.tracked_nonces(), 3);
    let later = t0() + Duration::from_secs(20);
    let ch = challenge_of(&server, Algorithm::Md5, later);
    assert!(verify(&server, &answer(&ch, "alice", "s3cret", 1), later).is_ok());
    assert_eq!(server.tracked_nonces(), 1);
}

#[test]
fn server_with_tiny_table_turns_evicted_nonces_stale() {
    let server = DigestServer::with_nc_capacity(REALM, SECRET, TTL, 2);
    let first = challenge_of(&server, Algorithm::Md5, t0());
    assert!(verify(&server, &answer(&first, "alice", "s3cret", 1), t0()).is_ok());
    let t1 = t0() + Duration::from_secs(1);
    for _ in 0..2 {
        let ch = challenge_of(&server, Algorithm::Md5, t1);
        assert!(verify(&server, &answer(&ch, "alice", "s3cret", 1), t1).is_ok());
    }
    assert_eq!(server.tracked_nonces(), 2);
    // `first` was evicted; replaying it must not succeed.
    assert_eq!(
        verify(&server, &answer(&first, "alice", "s3cret", 1), t1),
        Err(AuthError::StaleNonce)
    );
}

#[test]
fn padded_hmac_key_matches_plain_hmac() {
    let server = server();
    let mut reference = HmacSha256::new_from_slice(&SECRET).unwrap();
    reference.update(b"0123456789abcdef");
    let full = reference.finalize().into_bytes();
    assert_eq!(server.tag(b"0123456789abcdef")[..], full[..TAG_LEN]);
}

#[test]
fn constant_time_compare() {
    assert!(ct_eq(b"", b""));
    assert!(ct_eq(b"abc", b"abc"));
    assert!(!ct_eq(b"abc", b"abd"));
    assert!(!ct_eq(b"abc", b"ab"));
}

#[test]
fn clock_before_epoch_and_zero_ttl_do_not_panic() {
    let server = DigestServer::new(REALM, SECRET, Duration::ZERO);
    let before = UNIX_EPOCH - Duration::from_secs(5);
    let ch = challenge_of(&server, Algorithm::Md5, before);
    assert_eq!(
        verify(&server, &answer(&ch, "alice", "s3cret", 1), before),
        Err(AuthError::StaleNonce)
    );
    let sub = DigestServer::new(REALM, SECRET, Duration::from_millis(1));
    let ch = challenge_of(&sub, Algorithm::Md5, t0());
    assert!(verify(&sub, &answer(&ch, "alice", "s3cret", 1), t0()).is_ok());
}

#[test]
fn server_is_send_sync_and_debug_hides_secret() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<DigestServer>();
    let shown = format!("{:?}", server());
    assert!(shown.contains(REALM));
    assert!(!shown.contains("mac"));
}
