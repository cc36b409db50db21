//! A machine out of descriptors is not a server that is down. This file holds one test on
//! purpose: it lowers the descriptor limit of its own process (a test binary of its own, so
//! no other test runs beside it).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, unsafe_code)]

mod common;

use common::*;
use latchkey_client::{ClientConfig, Error, Method, ServerList, ServerListConfig, Trust, Url};
use std::time::Duration;

fn nofile() -> libc::rlimit {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the struct we own.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    lim
}

fn set_soft_nofile(soft: libc::rlim_t) {
    let lim = libc::rlimit {
        rlim_cur: soft,
        rlim_max: nofile().rlim_max,
    };
    // SAFETY: setrlimit reads the struct we own.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
}

#[tokio::test(flavor = "current_thread")]
async fn no_descriptor_left_is_a_local_error_that_leaves_the_circuit_closed() {
    let server = tls_server(None).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = write_temp(&dir, "ca.crt", &server.cert.cert.pem());
    let url = server.https_url();
    let client = ClientConfig::parse(&url)
        .unwrap()
        .with_trust(Trust::WebPkiCaFile(ca))
        .with_connect_timeout(Duration::from_millis(500))
        .with_request_timeout(Duration::from_millis(1500));
    let list = ServerList::from_config(ServerListConfig::new(
        vec![Url::parse(&url).unwrap()],
        client,
    ))
    .unwrap();

    // Take every descriptor this process may still open, as a local attacker holding the
    // agent's socket connections would.
    let saved = nofile();
    let open_now = std::fs::read_dir("/proc/self/fd").unwrap().count() as libc::rlim_t;
    set_soft_nofile(open_now + 16);
    let mut hog = Vec::new();
    while let Ok(f) = std::fs::File::open("/dev/null") {
        hog.push(f);
    }
    assert!(
        std::fs::File::open("/dev/null").is_err(),
        "every descriptor is taken"
    );

    let err = list
        .call::<serde_json::Value>(Method::GET, "/ok", None, None)
        .await
        .unwrap_err();
    drop(hog);
    set_soft_nofile(saved.rlim_cur);

    assert!(matches!(err, Error::Local { .. }), "{err:?}");
    assert!(!err.is_unreachable(), "{err}");
    assert!(err.to_string().contains("too many open files"), "{err}");
    let status = &list.status()[0];
    assert_eq!(status.circuit, "closed", "a local error trips no breaker");
    assert_eq!(server.accepted(), 0);

    // With descriptors back, the same list reaches the server at once.
    let v: serde_json::Value = list.call(Method::GET, "/ok", None, None).await.unwrap();
    assert!(v.is_object(), "{v}");
}
