//! Unit tests of the server list: configuration, selection orders, hashing.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::breaker::ManualClock;

fn list(urls: &[&str], selection: Selection) -> Result<ServerList> {
    let servers = urls.iter().map(|u| Url::parse(u).unwrap()).collect();
    ServerList::with_clock(
        ServerListConfig::new(servers, ClientConfig::parse("http://unused:1")?)
            .with_selection(selection),
        Arc::new(ManualClock::new()),
    )
}

#[test]
fn fnv1a_matches_the_published_test_vectors() {
    assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
}

#[test]
fn selection_parses_and_prints() {
    for s in [
        Selection::Ordered,
        Selection::Balanced,
        Selection::Consistent,
    ] {
        assert_eq!(s.to_string().parse::<Selection>().unwrap(), s);
    }
    assert_eq!(
        " Balanced ".parse::<Selection>().unwrap(),
        Selection::Balanced
    );
    let e = "random".parse::<Selection>().unwrap_err();
    assert!(
        e.to_string().contains("ordered, balanced or consistent"),
        "{e}"
    );
    let json = serde_json::to_string(&Selection::Consistent).unwrap();
    assert_eq!(json, r#""consistent""#);
}

#[test]
fn server_urls_parse_from_a_comma_list() {
    let urls = parse_server_urls("https://a:1, https://b:2/,,").unwrap();
    assert_eq!(urls.len(), 2);
    assert!(parse_server_urls("https://a:1,not a url").is_err());
}

#[test]
fn configuration_mistakes_are_refused() {
    let e = list(&[], Selection::Ordered).unwrap_err();
    assert!(e.to_string().contains("no server"), "{e}");
    let e = list(&["http://a:1", "http://a:1/"], Selection::Ordered).unwrap_err();
    assert!(e.to_string().contains("listed twice"), "{e}");
    let e = list(&["http://a:1", "https://b:1"], Selection::Ordered).unwrap_err();
    assert!(e.to_string().contains("no way to trust https://b:1"), "{e}");
    let e = list(&["ftp://a:1"], Selection::Ordered).unwrap_err();
    assert!(matches!(e, Error::Config(_)), "{e}");
    let cfg = ServerListConfig::new(
        vec![Url::parse("http://a:1").unwrap()],
        ClientConfig::parse("http://a:1").unwrap(),
    )
    .with_breaker(BreakerConfig {
        base: std::time::Duration::from_secs(60),
        max: std::time::Duration::from_secs(30),
    });
    assert!(ServerList::from_config(cfg).is_err());
    let e = ServerList::new(
        &["http://a:1", "not a url"],
        Selection::Ordered,
        BreakerConfig::default(),
        ClientConfig::parse("http://a:1").unwrap(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("invalid server URL"), "{e}");
}

#[test]
fn consistent_order_starts_at_the_hash_and_wraps_in_list_order() {
    let l = list(
        &["http://a:1", "http://b:1", "http://c:1"],
        Selection::Consistent,
    )
    .unwrap();
    for user in ["alice", "bob", "carol", "dave"] {
        let start = usize::try_from(fnv1a64(user.as_bytes()) % 3).unwrap();
        let want: Vec<usize> = (0..3).map(|k| (start + k) % 3).collect();
        assert_eq!(l.try_order(Some(user)), want, "{user}");
        assert_eq!(l.try_order(Some(user)), want, "stable for {user}");
    }
    assert_eq!(l.try_order(None), vec![0, 1, 2]);
}

#[test]
fn balanced_order_rotates() {
    let l = list(
        &["http://a:1", "http://b:1", "http://c:1"],
        Selection::Balanced,
    )
    .unwrap();
    let firsts: Vec<usize> = (0..6).map(|_| l.try_order(None)[0]).collect();
    assert_eq!(firsts, vec![0, 1, 2, 0, 1, 2]);
    assert_eq!(l.try_order(None), vec![0, 1, 2]);
    assert_eq!(l.try_order(None), vec![1, 2, 0]);
}

#[test]
fn status_of_a_fresh_list_is_all_closed() {
    let servers = vec!["http://a:1/".to_string(), " http://b:1".to_string()];
    let l = ServerList::new(
        &servers,
        Selection::Ordered,
        BreakerConfig::default(),
        ClientConfig::parse("http://unused:1").unwrap(),
    )
    .unwrap();
    let st = l.status();
    assert_eq!(st.len(), 2);
    assert_eq!(st[0].url, "http://a:1");
    assert!(
        st.iter()
            .all(|s| s.circuit == "closed" && s.last_contact.is_none())
    );
    assert_eq!(l.urls(), vec!["http://a:1", "http://b:1"]);
}
