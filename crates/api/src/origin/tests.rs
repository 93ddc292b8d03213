//! Header parsing and matching, table-driven; the gate itself is tested through the router
//! (`crate::tests::cross_site`).

use super::*;

/// A parsed authority: host and port.
type Parsed = Option<(Host, Option<u16>)>;
/// A parsed origin: whether `https`, host and port.
type ParsedOrigin = Option<(bool, Host, Option<u16>)>;

fn name(n: &str) -> Host {
    Host::Name(n.to_owned())
}

fn ip(s: &str) -> Host {
    Host::Ip(s.parse().unwrap())
}

#[test]
fn authorities_parse_as_host_carries_them() {
    let cases: &[(&str, Parsed)] = &[
        ("localhost", Some((name("localhost"), None))),
        ("localhost:7700", Some((name("localhost"), Some(7700)))),
        ("Nexus.Example.COM", Some((name("nexus.example.com"), None))),
        (
            "nexus.example.com.:443",
            Some((name("nexus.example.com"), Some(443))),
        ),
        ("127.0.0.1:7700", Some((ip("127.0.0.1"), Some(7700)))),
        ("10.1.2.3", Some((ip("10.1.2.3"), None))),
        ("[::1]:7700", Some((ip("::1"), Some(7700)))),
        ("[2001:db8::1]", Some((ip("2001:db8::1"), None))),
        ("my_host:1", Some((name("my_host"), Some(1)))),
        // Looks like an address, is a name: refused unless listed.
        ("2130706433", Some((name("2130706433"), None))),
        ("", None),
        (":7700", None),
        ("localhost:", None),
        ("localhost:abc", None),
        ("localhost:65536", None),
        ("localhost:+80", None),
        ("localhost:7700:1", None),
        ("::1", None),
        ("[::1", None),
        ("[::1]x", None),
        ("[fe80::1%eth0]", None),
        ("[127.0.0.1]", None),
        ("user@localhost", None),
        ("localhost/path", None),
        ("evil.com localhost", None),
        ("a..b", None),
        ("é.example.com", None),
    ];
    for (value, expected) in cases {
        let parsed = parse_authority(value).map(|a| (a.host, a.port));
        assert_eq!(&parsed, expected, "{value:?}");
    }
}

#[test]
fn origins_parse_as_browsers_send_them() {
    let cases: &[(&str, ParsedOrigin)] = &[
        (
            "http://localhost:7700",
            Some((false, name("localhost"), Some(7700))),
        ),
        (
            "https://app.example.com",
            Some((true, name("app.example.com"), None)),
        ),
        ("http://[::1]:3000", Some((false, ip("::1"), Some(3000)))),
        ("null", None),
        ("", None),
        ("localhost:7700", None),
        ("ftp://localhost", None),
        ("HTTP://localhost", None),
        ("http://localhost/", None),
        ("http://localhost:7700/path", None),
        ("http://user@localhost", None),
        ("http://", None),
    ];
    for (value, expected) in cases {
        let parsed = parse_origin(value).map(|o| (o.https, o.authority.host, o.authority.port));
        assert_eq!(&parsed, expected, "{value:?}");
    }
}

#[test]
fn the_servers_own_addresses_are_allowed_by_default() {
    let own = AllowedHosts::new(&[]);
    let listed = AllowedHosts::new(&[
        "Nexus.Example.com.".to_owned(),
        "*.tenants.example.com".to_owned(),
    ]);
    let any = AllowedHosts::new(&["nexus.example.com".to_owned(), "*".to_owned()]);
    let cases: &[(Host, bool, bool, bool)] = &[
        // host, by default, with the list, with `*`
        (ip("127.0.0.1"), true, true, true),
        (ip("10.0.0.7"), true, true, true),
        (ip("::1"), true, true, true),
        (name("localhost"), true, true, true),
        (name("nexus.example.com"), false, true, true),
        (name("acme.tenants.example.com"), false, true, true),
        (name("a.b.tenants.example.com"), false, true, true),
        (name("tenants.example.com"), false, false, true),
        (name("eviltenants.example.com"), false, false, true),
        (name("nexus.example.com.evil.net"), false, false, true),
        (name("rebind.attacker.example"), false, false, true),
        (name("localhost.attacker.example"), false, false, true),
    ];
    for (host, by_default, with_list, with_any) in cases {
        assert_eq!(own.allows(host), *by_default, "{host:?} by default");
        assert_eq!(listed.allows(host), *with_list, "{host:?} with the list");
        assert_eq!(any.allows(host), *with_any, "{host:?} with `*`");
    }
}

#[test]
fn same_origin_is_the_same_host_and_port() {
    let cases: &[(&str, &str, bool)] = &[
        ("http://localhost:7700", "localhost:7700", true),
        ("http://LOCALHOST:7700", "localhost:7700", true),
        ("http://127.0.0.1:7700", "127.0.0.1:7700", true),
        ("http://[::1]:7700", "[::1]:7700", true),
        ("https://nexus.example.com", "nexus.example.com", true),
        ("https://nexus.example.com", "nexus.example.com:443", true),
        ("http://nexus.example.com", "nexus.example.com:80", true),
        // The scheme is not compared: behind TLS termination the server cannot know it.
        (
            "http://nexus.example.com:7700",
            "nexus.example.com:7700",
            true,
        ),
        (
            "https://nexus.example.com:7700",
            "nexus.example.com:7700",
            true,
        ),
        ("http://localhost:3000", "localhost:7700", false),
        ("http://localhost", "localhost:7700", false),
        ("http://127.0.0.1:7700", "localhost:7700", false),
        ("http://evil.example:7700", "127.0.0.1:7700", false),
        ("https://nexus.example.com", "nexus.example.com:80", false),
        ("http://nexus.example.com:443", "nexus.example.com", false),
    ];
    for (origin, host, same) in cases {
        let origin = parse_origin(origin).unwrap();
        let host = parse_authority(host).unwrap();
        assert_eq!(origin.is_same_as(&host), *same, "{origin:?} vs {host:?}");
    }
}
