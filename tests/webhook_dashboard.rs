//! The dashboard in a real browser: headless Chromium opens `/` of a running operator whose
//! status store holds an hour of samples, and the charts must have rendered (SVG paths for each
//! series, the traffic-state band). A screenshot is kept in target/tmp/ as a test artifact.

mod common;

use std::process::Command;
use std::sync::Arc;

use chrono::{Duration, Utc};
use swarmpilot::policy::{self, TrafficState};
use swarmpilot::reconcile::{Sample, StatusStore, Waker};
use swarmpilot::webhook::{self, AppState, AuthConfig, Metrics, ServerConfig};
use tokio_util::sync::CancellationToken;

fn chromium() -> &'static str {
    let found = Command::new("chromium").arg("--version").output();
    match found {
        Ok(output) if output.status.success() => "chromium",
        _ => panic!(
            "Debian's chromium is needed for the dashboard test: `apt-get install -y chromium` \
             (deploy/local-swarm.sh installs it)"
        ),
    }
}

fn status_with_an_hour_of_samples() -> Arc<StatusStore> {
    let store = Arc::new(StatusStore::default());
    let policy = policy::parse(
        "apiVersion: swarmpilot.io/v1alpha1\nkind: ScalingPolicy\nmetadata: {name: shop_web}\n\
         spec:\n  minReplicas: 2\n  maxReplicas: 12\n  metrics:\n    - name: rps\n      \
         prometheus: {query: 'sum(rate(http_requests_total[1m]))'}\n      target: {averageValue: 50}\n",
    )
    .unwrap();
    let now = Utc::now();
    store.update("shop_web", |status| {
        status.service_id = "abc".into();
        status.policy = Some(policy);
        status.current = Some(5);
        status.desired = Some(6);
        status.forecast = Some(320.0);
        status.traffic_state = Some(TrafficState::FlashCrowd);
        for i in 0..720u32 {
            let t = f64::from(i);
            let demand =
                200.0 + 80.0 * (t / 90.0).sin() + if (500..560).contains(&i) { 150.0 } else { 0.0 };
            status.push_sample(Sample {
                at: now - Duration::seconds(5 * i64::from(720 - i)),
                demand: Some(demand),
                replicas: (demand / 50.0).ceil() as u32,
                desired: (demand / 50.0).ceil() as u32 + 1,
                forecast: Some(demand * 1.05),
                state: Some(if (500..560).contains(&i) {
                    TrafficState::FlashCrowd
                } else {
                    TrafficState::Normal
                }),
            });
        }
    });
    store
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn charts_render_in_headless_chromium() {
    let browser = chromium();
    let swarm = Arc::new(common::swarm().await);
    let (waker, _wakes) = Waker::new();
    let config = ServerConfig {
        auth: AuthConfig::default().with_open_reads(true),
        ..ServerConfig::default()
    };
    let state = AppState::new(
        swarm,
        status_with_an_hour_of_samples(),
        waker,
        Arc::new(Metrics::new()),
        &config,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(webhook::serve_on(listener, state, shutdown.clone()));

    let artifacts = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let screenshot = artifacts.join("dashboard.png");
    let _ = std::fs::remove_file(&screenshot);
    let profile = tempfile::tempdir().unwrap();
    let run = |extra: &[String]| {
        let url = url.clone();
        let mut args = vec![
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            format!("--user-data-dir={}", profile.path().display()),
            "--virtual-time-budget=8000".to_owned(),
            "--window-size=1400,900".to_owned(),
        ];
        args.extend_from_slice(extra);
        args.push(url);
        let browser = browser.to_owned();
        tokio::task::spawn_blocking(move || Command::new(browser).args(&args).output().unwrap())
    };
    let dom = run(&["--dump-dom".to_owned()]).await.unwrap();
    let dom = String::from_utf8_lossy(&dom.stdout).into_owned();
    let shot = run(&[format!("--screenshot={}", screenshot.display())])
        .await
        .unwrap();
    shutdown.cancel();
    server.await.unwrap().unwrap();

    assert!(
        dom.contains("data-service=\"shop_web\""),
        "no service card in:\n{dom}"
    );
    for series in ["demand", "forecast", "replicas", "desired"] {
        let marker = format!("class=\"series {series}\" d=\"M");
        assert!(dom.contains(&marker), "no {series} path in:\n{dom}");
    }
    assert!(
        dom.contains("class=\"state flash_crowd\""),
        "no traffic-state band"
    );
    assert!(
        dom.contains("class=\"state normal\""),
        "no traffic-state band"
    );
    assert!(dom.contains("flash crowd"), "no traffic-state badge");
    assert!(dom.contains("replicas 5 → 6"));
    let png = std::fs::read(&screenshot).unwrap_or_else(|error| {
        panic!(
            "no screenshot at {} ({error}); chromium said: {}",
            screenshot.display(),
            String::from_utf8_lossy(&shot.stderr)
        )
    });
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "screenshot is not a real PNG"
    );
}
