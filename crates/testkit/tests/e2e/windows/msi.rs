//! The Windows installer under Wine: `latchkey.msi` installed silently in a Wine prefix of its
//! own (files, COM class, credential provider and filter, the agent service, the join from the
//! MSI's properties), a logon through the tile against the installed service, and uninstall.
//!
//! These tests need the Windows build: `scripts/test` runs `scripts/windows-toolchain build`
//! and then them with `--run-ignored only`, one at a time (nextest test group `wine-msi`).

use super::wine::*;
use latchkey_testkit::{TestServer, hotp_at};
use std::process::Command;
use std::time::Duration;

const CLSID: &str = "{f4efd6f9-775c-4541-9dcb-303661afb99d}";

fn registry_keys() -> [String; 4] {
    [
        format!(r"HKCR\CLSID\{CLSID}\InprocServer32"),
        format!(
            r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Authentication\Credential Providers\{CLSID}"
        ),
        format!(
            r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Authentication\Credential Provider Filters\{CLSID}"
        ),
        r"HKLM\System\CurrentControlSet\Services\latchkey-agent".to_string(),
    ]
}

/// The silent install as an administrator would run it, in a prefix of its own: the MSI
/// installs the files, registers the COM class, the provider, the filter and the service,
/// and joins with the properties (through the given proxy); the service then runs the agent
/// and a logon through the tile works against it; uninstall removes it all again.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the Windows build and Wine: scripts/test runs it"]
async fn msi_silent_install_joins_runs_the_agent_service_and_uninstalls() {
    let w = win();
    let msi = w.out.join("../../../latchkey.msi");
    assert!(
        msi.exists(),
        "{} missing: scripts/windows-toolchain build",
        msi.display()
    );
    let server = TestServer::start().await.unwrap();
    let uri = user_with_hotp(&server, "heidi").await;
    let proxy = latchkey_testkit::proxy::ConnectProxy::start()
        .await
        .unwrap();
    let prefix = OwnPrefix::copy_of_test_prefix();
    let token = server.join_token().await.unwrap();

    let log = msiexec(
        &w,
        &prefix,
        &[
            "/i".into(),
            z(&msi),
            format!("SERVER_URL={}", server.url()),
            format!("JOIN_TOKEN={token}"),
            format!("CA_CERT_PIN={}", server.info.tls_fingerprint),
            "SELECTION=balanced".into(),
            "CONNECT_TIMEOUT=2500ms".into(),
            format!("PROXY={}", proxy.url),
        ],
    )
    .await;
    assert!(log.contains("Join"), "the join custom action ran: {log}");

    // The files.
    for (installed, built) in [
        (
            "Program Files/latchkey/latchkey-agent.exe",
            "latchkey-agent.exe",
        ),
        ("windows/system32/latchkey_cp.dll", "latchkey_cp.dll"),
    ] {
        let got = std::fs::read(prefix.c_drive(installed))
            .unwrap_or_else(|e| panic!("{installed} not installed: {e}"));
        assert!(
            got == std::fs::read(w.out.join(built)).unwrap(),
            "{installed} differs from the build"
        );
    }

    // The agent configuration, from the properties.
    let conf_dir = prefix.c_drive("ProgramData/latchkey");
    let conf: toml::Value =
        toml::from_str(&std::fs::read_to_string(conf_dir.join("agent.toml")).unwrap()).unwrap();
    assert_eq!(
        conf["servers"].as_array().unwrap(),
        &[toml::Value::from(server.url())]
    );
    assert_eq!(conf["selection"].as_str(), Some("balanced"));
    assert_eq!(conf["connect_timeout"].as_str(), Some("2500ms"));
    assert_eq!(conf["proxy"].as_str(), Some(proxy.url.as_str()));
    assert_eq!(
        conf["pin"].as_str(),
        Some(server.info.tls_fingerprint.as_str())
    );
    assert_eq!(conf["socket"].as_str(), Some(r"\\.\pipe\latchkey-agent"));
    assert!(conf_dir.join("machine.key").exists());
    assert!(proxy.tunnels() >= 1, "the join went through PROXY");

    // The machine joined.
    let machines: Vec<latchkey_proto::admin::Machine> = server
        .admin()
        .unwrap()
        .get("/v1/admin/machines")
        .await
        .unwrap();
    let id = conf["machine_id"].as_str().unwrap();
    assert_eq!(
        machines.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
        [id],
        "{machines:?}"
    );

    // COM class, provider, filter, service.
    let [inproc, provider, filter, service] = registry_keys();
    let v = reg_query(&w, &prefix, &inproc)
        .await
        .expect("InprocServer32");
    assert!(
        v.contains("latchkey_cp.dll") && v.contains("Apartment"),
        "{v}"
    );
    assert!(
        reg_query(&w, &prefix, &provider).await.is_some(),
        "provider key"
    );
    assert!(
        reg_query(&w, &prefix, &filter).await.is_some(),
        "filter key"
    );
    let v = reg_query(&w, &prefix, &service).await.expect("service key");
    assert!(v.contains(r"latchkey\latchkey-agent.exe service"), "{v}");
    assert!(v.contains("LocalSystem"), "{v}");
    let start = v
        .lines()
        .find(|l| l.trim_start().starts_with("Start "))
        .unwrap_or_default();
    assert!(start.trim_end().ends_with("0x2"), "automatic start: {v}");

    // The service runs the agent (Wine starts automatic services with the prefix; they live
    // while a program runs in it, here the LogonUI stand-in), and a logon goes through it.
    let mut s = w.session_in(Some(&prefix), "logon");
    // Up to 80 s (a loaded machine starts Wine's services slowly), within `next`'s 90 s.
    s.send(&["wait-agent", "80000"]);
    let waited = s.next("wait-agent").await;
    assert!(
        waited["waited_ms"].is_u64(),
        "the service's pipe never came up: {waited}"
    );
    let r = s.submit("heidi", PASSWORD, &hotp_at(&uri, 0)).await;
    assert_eq!(r["response"], "CPGSR_RETURN_CREDENTIAL_FINISHED", "{r}");
    assert_eq!(r["credential"]["user"], "heidi");
    assert_eq!(r["credential"]["password"], PASSWORD);
    s.quit().await;
    assert_eq!(server.login_count("otp", "success").await.unwrap(), 1);
    let agent_log = std::fs::read_to_string(conf_dir.join("agent.log")).unwrap_or_default();
    assert!(
        agent_log.contains("latchkey-agent listening"),
        "the service (which logs to agent.log) served the login: {agent_log}"
    );
    assert!(proxy.tunnels() >= 2, "the service's agent uses PROXY too");

    // Uninstall removes files, keys and the service; the joined configuration stays
    // (docs/windows.md: delete C:\ProgramData\latchkey by hand).
    //
    // Under Wine, every program started in a prefix whose wineserver is down boots it again
    // and starts the automatic services with it, so `msiexec /x` would race the agent it is
    // about to stop: a service still starting when StopServices runs keeps its .exe in use
    // and RemoveFiles leaves it behind. On Windows services start at boot, not with msiexec.
    // So: demand start (the automatic start was checked above), and wait until this
    // prefix's wineserver (and with it the service) is gone.
    let mut c = w.builtin(&prefix, "reg");
    c.args([
        "add",
        r"HKLM\SYSTEM\CurrentControlSet\Services\latchkey-agent",
        "/v",
        "Start",
        "/t",
        "REG_DWORD",
        "/d",
        "3",
        "/f",
    ]);
    let out = tokio::task::spawn_blocking(move || c.output())
        .await
        .unwrap()
        .unwrap();
    assert!(out.status.success(), "reg add: {out:?}");
    let mut c = Command::new("/usr/lib/wine/wineserver");
    c.env("WINEPREFIX", prefix.path()).arg("-w");
    tokio::time::timeout(
        Duration::from_secs(60),
        tokio::task::spawn_blocking(move || c.status()),
    )
    .await
    .expect("the prefix's wineserver did not exit within 60 s")
    .unwrap()
    .unwrap();
    msiexec(&w, &prefix, &["/x".into(), z(&msi)]).await;
    assert!(
        !prefix
            .c_drive("Program Files/latchkey/latchkey-agent.exe")
            .exists()
    );
    assert!(!prefix.c_drive("windows/system32/latchkey_cp.dll").exists());
    for key in registry_keys() {
        assert!(
            reg_query(&w, &prefix, &key).await.is_none(),
            "{key} left behind"
        );
    }
    assert!(conf_dir.join("agent.toml").exists());
}

/// An interactive-style install (no properties): nothing to join with, yet the install must
/// not roll back. The service runs and waits; `latchkey-agent join` by hand afterwards is
/// picked up by the running service, which then serves logons.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the Windows build and Wine: scripts/test runs it"]
async fn msi_without_properties_installs_and_the_service_waits_for_join() {
    let w = win();
    let msi = w.out.join("../../../latchkey.msi");
    let server = TestServer::start().await.unwrap();
    let uri = user_with_hotp(&server, "kim").await;
    let prefix = OwnPrefix::copy_of_test_prefix();
    msiexec(&w, &prefix, &["/i".into(), z(&msi)]).await;
    let conf_dir = prefix.c_drive("ProgramData/latchkey");
    assert!(!conf_dir.join("agent.toml").exists(), "nothing joined yet");
    assert!(
        prefix
            .c_drive("Program Files/latchkey/latchkey-agent.exe")
            .exists()
    );

    // The prefix runs (and with it the automatic service) while the tile is up.
    let mut s = w.session_in(Some(&prefix), "logon");
    let r = s.submit("kim", PASSWORD, &hotp_at(&uri, 0)).await;
    assert_eq!(
        r["response"], "CPGSR_NO_CREDENTIAL_FINISHED",
        "not joined: no credential: {r}"
    );
    assert!(r["credential"].is_null());

    let token = server.join_token().await.unwrap();
    let mut join = w.builtin(&prefix, r"C:\Program Files\latchkey\latchkey-agent.exe");
    join.args([
        "join",
        "--server",
        &server.url(),
        "--join-token",
        &token,
        "--pin",
    ])
    .arg(&server.info.tls_fingerprint);
    let out = tokio::task::spawn_blocking(move || join.output())
        .await
        .unwrap()
        .unwrap();
    assert!(out.status.success(), "join by hand: {out:?}");
    assert!(conf_dir.join("agent.toml").exists());

    s.send(&["wait-agent", "80000"]);
    let waited = s.next("wait-agent").await;
    assert!(
        waited["waited_ms"].is_u64(),
        "the waiting service never started the agent: {waited}"
    );
    let r = s.submit("kim", PASSWORD, &hotp_at(&uri, 0)).await;
    assert_eq!(r["response"], "CPGSR_RETURN_CREDENTIAL_FINISHED", "{r}");
    assert_eq!(r["credential"]["user"], "kim");
    s.quit().await;
    let log = std::fs::read_to_string(conf_dir.join("agent.log")).unwrap_or_default();
    assert!(
        log.contains("the machine joined: starting the agent"),
        "{log}"
    );
}
