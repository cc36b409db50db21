//! The server list against real sockets: selection policies, fail-over, the circuit breaker.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use latchkey_client::{
    ClientConfig, Error, ManualClock, Method, Selection, ServerList, ServerListConfig, StatusCode,
    Trust, Url,
};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// In-test HTTPS servers and a CA file that trusts all of them (each has its own self-signed
/// certificate; the CA file holds all three, as an admin's bundle would).
struct Fleet {
    servers: Vec<TestServer>,
    ca: PathBuf,
    _dir: tempfile::TempDir,
}

async fn fleet(n: usize) -> Fleet {
    let mut servers = Vec::new();
    for _ in 0..n {
        servers.push(tls_server(None).await);
    }
    let dir = tempfile::tempdir().unwrap();
    let bundle: String = servers.iter().map(|s| s.cert.cert.pem()).collect();
    let ca = write_temp(&dir, "servers.crt", &bundle);
    Fleet {
        servers,
        ca,
        _dir: dir,
    }
}

impl Fleet {
    fn urls(&self) -> Vec<String> {
        self.servers.iter().map(|s| s.https_url()).collect()
    }

    /// Index of the server that gave answer `v` (from the Host header it saw).
    fn which(&self, v: &Value) -> usize {
        let host = v["host"].as_str().unwrap();
        self.servers
            .iter()
            .position(|s| host == format!("127.0.0.1:{}", s.addr.port()))
            .unwrap_or_else(|| panic!("answer from an unknown server: {v}"))
    }

    fn requests(&self) -> Vec<usize> {
        self.servers.iter().map(|s| s.requests()).collect()
    }
}

fn https(addr: SocketAddr) -> String {
    format!("https://127.0.0.1:{}", addr.port())
}

fn config(urls: &[String], ca: &Path, selection: Selection) -> ServerListConfig {
    let servers = urls.iter().map(|u| Url::parse(u).unwrap()).collect();
    let client = ClientConfig::parse(&urls[0])
        .unwrap()
        .with_trust(Trust::WebPkiCaFile(ca.to_path_buf()))
        .with_connect_timeout(Duration::from_millis(500))
        .with_request_timeout(Duration::from_millis(1500));
    ServerListConfig::new(servers, client).with_selection(selection)
}

fn with_connect_timeout(mut cfg: ServerListConfig, t: Duration) -> ServerListConfig {
    cfg.client.connect_timeout = t;
    cfg
}

async fn ok(list: &ServerList, user: Option<&str>) -> Value {
    list.call(Method::GET, "/ok", None, user).await.unwrap()
}

#[tokio::test]
async fn ordered_uses_the_first_server_and_fails_over_in_order_when_it_stops() {
    let f = fleet(3).await;
    let list = ServerList::from_config(config(&f.urls(), &f.ca, Selection::Ordered)).unwrap();
    for _ in 0..5 {
        assert_eq!(f.which(&ok(&list, None).await), 0);
    }
    assert_eq!(f.requests(), vec![5, 0, 0]);
    assert_eq!(list.status()[0].circuit, "closed");
    assert!(list.status()[0].last_contact.is_some());

    f.servers[0].stop();
    assert_eq!(
        f.which(&ok(&list, None).await),
        1,
        "fails over to the second"
    );
    let st = list.status();
    assert_eq!(st[0].circuit, "open");
    assert_eq!(st[0].retry_in_secs, Some(30));
    assert!(st[0].last_error.is_some(), "{st:?}");
    assert_eq!(st[1].circuit, "closed");

    for _ in 0..3 {
        assert_eq!(f.which(&ok(&list, None).await), 1);
    }
    assert_eq!(f.requests(), vec![5, 4, 0], "the third is never needed");
}

#[tokio::test]
async fn open_circuit_skips_a_blackholed_server_without_waiting_for_the_connect_timeout() {
    let f = fleet(2).await;
    let (hole, hole_conns) = counted_silent_listener().await;
    let mut urls = vec![https(hole)];
    urls.extend(f.urls());
    let connect_timeout = Duration::from_millis(1000);
    let list = ServerList::from_config(with_connect_timeout(
        config(&urls, &f.ca, Selection::Ordered),
        connect_timeout,
    ))
    .unwrap();

    let start = Instant::now();
    let first = ok(&list, None).await;
    let took_first = start.elapsed();
    assert_eq!(f.which(&first), 0, "answered by the first real server");
    assert!(took_first >= Duration::from_millis(950), "{took_first:?}");
    assert_eq!(hole_conns.load(Ordering::SeqCst), 1);
    let st = &list.status()[0];
    assert_eq!(st.circuit, "open");
    assert_eq!(st.last_error.as_deref(), Some("timed out after 1 s"));

    let start = Instant::now();
    let second = ok(&list, None).await;
    let took_second = start.elapsed();
    assert_eq!(f.which(&second), 0);
    assert!(
        took_second < connect_timeout / 5,
        "the open circuit is skipped: {took_second:?}"
    );
    assert_eq!(
        hole_conns.load(Ordering::SeqCst),
        1,
        "blackhole not touched"
    );
}

#[tokio::test]
async fn balanced_spreads_calls_across_all_servers_and_over_the_survivors() {
    let f = fleet(3).await;
    let list = ServerList::from_config(config(&f.urls(), &f.ca, Selection::Balanced)).unwrap();
    for _ in 0..30 {
        ok(&list, None).await;
    }
    assert_eq!(f.requests(), vec![10, 10, 10]);

    f.servers[0].stop();
    // Whichever call meets the stopped server first fails over and opens its circuit.
    for _ in 0..3 {
        ok(&list, None).await;
    }
    assert_eq!(list.status()[0].circuit, "open");
    let before = f.requests();
    for _ in 0..20 {
        ok(&list, None).await;
    }
    let after = f.requests();
    assert_eq!(
        (after[1] - before[1], after[2] - before[2]),
        (10, 10),
        "the two survivors share the load evenly"
    );
}

#[tokio::test]
async fn consistent_keeps_a_user_on_one_server_moves_them_while_it_is_down_and_back_after() {
    let f = fleet(3).await;
    let clock = ManualClock::new();
    let list = ServerList::with_clock(
        config(&f.urls(), &f.ca, Selection::Consistent),
        Arc::new(clock.clone()),
    )
    .unwrap();

    let home = f.which(&ok(&list, Some("alice")).await);
    for _ in 0..9 {
        assert_eq!(f.which(&ok(&list, Some("alice")).await), home);
    }
    assert_eq!(f.requests()[home], 10);

    let mut used = BTreeSet::new();
    for i in 0..30 {
        let user = format!("user{i}");
        let first = f.which(&ok(&list, Some(&user)).await);
        assert_eq!(f.which(&ok(&list, Some(&user)).await), first, "{user}");
        used.insert(first);
    }
    assert_eq!(used.len(), 3, "different users spread over the servers");

    let next = (home + 1) % 3;
    f.servers[home].set_down(true);
    assert_eq!(f.which(&ok(&list, Some("alice")).await), next);
    let touched = f.servers[home].accepted();
    assert_eq!(f.which(&ok(&list, Some("alice")).await), next);
    assert_eq!(f.servers[home].accepted(), touched, "dead home not retried");

    f.servers[home].set_down(false);
    clock.advance(Duration::from_secs(29));
    assert_eq!(
        f.which(&ok(&list, Some("alice")).await),
        next,
        "still in back-off"
    );
    clock.advance(Duration::from_secs(1));
    assert_eq!(list.status()[home].circuit, "half_open");
    assert_eq!(
        f.which(&ok(&list, Some("alice")).await),
        home,
        "back home after the back-off"
    );
    let st = &list.status()[home];
    assert_eq!(st.circuit, "closed");
    assert_eq!(st.last_error, None);
    assert_eq!(
        st.last_contact,
        Some(latchkey_client::Clock::unix_now(&clock))
    );
}

#[tokio::test]
async fn a_definite_4xx_answer_is_returned_without_trying_the_other_servers() {
    let f = fleet(3).await;
    let list = ServerList::from_config(config(&f.urls(), &f.ca, Selection::Ordered)).unwrap();
    let err = list
        .call::<Value>(Method::GET, "/missing", None, Some("bob"))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::NOT_FOUND), "{err:?}");
    assert!(!err.is_unreachable());
    assert_eq!(f.requests(), vec![1, 0, 0]);
    let st = &list.status()[0];
    assert_eq!(st.circuit, "closed");
    assert!(st.last_contact.is_some(), "a 4xx is contact");

    f.servers[0].force_status(Some(403));
    let err = list
        .post::<_, Value>("/echo", &json!({"code": "123456"}), None)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::FORBIDDEN));
    assert_eq!(f.requests(), vec![2, 0, 0]);
}

#[tokio::test]
async fn a_server_error_fails_over_and_opens_the_circuit() {
    let f = fleet(3).await;
    let list = ServerList::from_config(config(&f.urls(), &f.ca, Selection::Ordered)).unwrap();
    f.servers[0].force_status(Some(503));
    let v: Value = list
        .post("/echo", &json!({"name": "bob"}), None)
        .await
        .unwrap();
    assert_eq!(f.which(&v), 1);
    assert_eq!(v["body"], r#"{"name":"bob"}"#, "the body is sent again");
    let st = &list.status()[0];
    assert_eq!(st.circuit, "open");
    assert_eq!(
        st.last_error.as_deref(),
        Some("HTTP 503: forced status 503 (forced)")
    );

    let answer = list.request(Method::GET, "/ok", None, None).await.unwrap();
    assert_eq!(answer.server, f.urls()[1]);
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(f.requests(), vec![1, 2, 0], "the failing server is skipped");
}

#[tokio::test]
async fn all_servers_down_gives_every_reason_then_fails_at_once() {
    let refused = closed_port().await;
    let (hole, hole_conns) = counted_silent_listener().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = write_temp(&dir, "ca.crt", &self_signed().cert.pem());
    let urls = vec![https(refused), https(hole)];
    let list = ServerList::from_config(with_connect_timeout(
        config(&urls, &ca, Selection::Ordered),
        Duration::from_millis(300),
    ))
    .unwrap();

    let err = list.get::<Value>("/ok", None).await.unwrap_err();
    assert!(err.is_unreachable());
    assert_eq!(
        err.to_string(),
        format!(
            "no latchkey server answered: {}: connection refused; {}: timed out after 0.3 s",
            urls[0], urls[1]
        )
    );

    let start = Instant::now();
    let err = list.get::<Value>("/ok", None).await.unwrap_err();
    let took = start.elapsed();
    assert!(
        took < Duration::from_millis(100),
        "no network wait: {took:?}"
    );
    assert_eq!(hole_conns.load(Ordering::SeqCst), 1);
    let Error::AllUnreachable { tried } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(tried.len(), 2);
    assert!(
        tried[0]
            .1
            .starts_with("not tried, circuit open for 30 s more")
            && tried[0].1.contains("connection refused"),
        "{err}"
    );
    assert!(err.is_unreachable());
}

#[tokio::test]
async fn half_open_server_gets_a_trial_and_a_failed_trial_doubles_the_backoff() {
    let f = fleet(2).await;
    let clock = ManualClock::new();
    let list = ServerList::with_clock(
        config(&f.urls(), &f.ca, Selection::Ordered),
        Arc::new(clock.clone()),
    )
    .unwrap();
    f.servers[0].set_down(true);
    assert_eq!(f.which(&ok(&list, None).await), 1);
    assert_eq!(list.status()[0].retry_in_secs, Some(30));

    clock.advance(Duration::from_secs(30));
    assert_eq!(list.status()[0].circuit, "half_open");
    assert_eq!(list.status()[0].retry_in_secs, None);
    let touched = f.servers[0].accepted();
    assert_eq!(
        f.which(&ok(&list, None).await),
        1,
        "trial failed, next one answers"
    );
    assert!(
        f.servers[0].accepted() > touched,
        "the trial reached the server"
    );
    assert_eq!(list.status()[0].circuit, "open");
    assert_eq!(list.status()[0].retry_in_secs, Some(60), "doubled");

    clock.advance(Duration::from_secs(60));
    ok(&list, None).await;
    assert_eq!(list.status()[0].retry_in_secs, Some(120));

    f.servers[0].set_down(false);
    clock.advance(Duration::from_secs(120));
    assert_eq!(f.which(&ok(&list, None).await), 0, "recovered");
    assert_eq!(list.status()[0].circuit, "closed");
    f.servers[0].set_down(true);
    ok(&list, None).await;
    assert_eq!(
        list.status()[0].retry_in_secs,
        Some(30),
        "back-off was reset"
    );
}

#[tokio::test]
async fn a_cancelled_trial_leaves_the_server_half_open_for_the_next_call() {
    let f = fleet(1).await;
    let (hole, hole_conns) = counted_silent_listener().await;
    let urls = vec![https(hole), f.urls()[0].clone()];
    let clock = ManualClock::new();
    let list = ServerList::with_clock(
        with_connect_timeout(
            config(&urls, &f.ca, Selection::Ordered),
            Duration::from_millis(300),
        ),
        Arc::new(clock.clone()),
    )
    .unwrap();
    ok(&list, None).await;
    assert_eq!(hole_conns.load(Ordering::SeqCst), 1);

    clock.advance(Duration::from_secs(30));
    let cancelled = tokio::time::timeout(Duration::from_millis(100), ok(&list, None)).await;
    assert!(cancelled.is_err(), "the trial was still waiting");
    assert_eq!(hole_conns.load(Ordering::SeqCst), 2);
    assert_eq!(list.status()[0].circuit, "half_open", "trial released");

    assert_eq!(f.which(&ok(&list, None).await), 0);
    assert_eq!(hole_conns.load(Ordering::SeqCst), 3, "tried again");
    assert_eq!(list.status()[0].retry_in_secs, Some(60));
}
