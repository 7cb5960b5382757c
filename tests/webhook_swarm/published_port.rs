//! The API port on the manager's chosen address only. Swarm publishes a `mode: host` port on
//! every address of the node (moby/moby#26696); docs/deploy.md keeps it to one with a rule in
//! Docker's `DOCKER-USER` chain. This checks that rule on the real engine: a host-mode published
//! port, and a client in a network namespace of the test's own reaching the host at two of its
//! addresses, the chosen one and another, before and after the rule.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{ensure_test_image, TestService, TEST_IMAGE};

/// Runs `program args`, panicking with its stderr when it fails.
fn run(program: &str, args: &[&str]) {
    let output = Command::new(program).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "{program} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A network namespace joined to the host by a veth pair: the host side holds `chosen` and
/// `other`, the namespace `client`. Removed, by name, when dropped.
struct Client {
    namespace: String,
    host_side: String,
    chosen: String,
    other: String,
}

impl Client {
    fn create() -> Client {
        let id = std::process::id();
        let net = format!("10.231.{}", id % 250 + 1);
        let client = Client {
            namespace: format!("sp-port-{id}"),
            host_side: format!("spport{}", id % 1_000_000),
            chosen: format!("{net}.1"),
            other: format!("{net}.2"),
        };
        let peer = format!("{}p", client.host_side);
        run("ip", &["netns", "add", &client.namespace]);
        run(
            "ip",
            &[
                "link",
                "add",
                &client.host_side,
                "type",
                "veth",
                "peer",
                "name",
                &peer,
            ],
        );
        run("ip", &["link", "set", &peer, "netns", &client.namespace]);
        for address in [&client.chosen, &client.other] {
            run(
                "ip",
                &[
                    "addr",
                    "add",
                    &format!("{address}/24"),
                    "dev",
                    &client.host_side,
                ],
            );
        }
        run("ip", &["link", "set", &client.host_side, "up"]);
        let inside = |args: &[&str]| {
            let mut all = vec!["netns", "exec", &client.namespace, "ip"];
            all.extend_from_slice(args);
            run("ip", &all);
        };
        inside(&["addr", "add", &format!("{net}.9/24"), "dev", &peer]);
        inside(&["link", "set", &peer, "up"]);
        inside(&["link", "set", "lo", "up"]);
        client
    }

    /// Whether an HTTP request from the namespace to `address:port` gets an answer.
    fn answered(&self, address: &str, port: u16) -> bool {
        let namespace = format!("/var/run/netns/{}", self.namespace);
        let target: SocketAddr = format!("{address}:{port}").parse().unwrap();
        std::thread::spawn(move || {
            let handle = std::fs::File::open(&namespace).unwrap();
            // SAFETY: setns moves only this thread, which does nothing else, into the namespace.
            let entered = unsafe { libc::setns(handle.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(entered, 0, "setns: {}", std::io::Error::last_os_error());
            let Ok(mut stream) = TcpStream::connect_timeout(&target, Duration::from_secs(2)) else {
                return false;
            };
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut answer = [0u8; 5];
            stream.write_all(b"GET / HTTP/1.0\r\n\r\n").is_ok()
                && stream.read_exact(&mut answer).is_ok()
                && &answer == b"HTTP/"
        })
        .join()
        .unwrap()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        // Deleting the namespace deletes its end of the pair, and with it the host's end.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.namespace])
            .output();
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_side])
            .output();
    }
}

/// The rule of docs/deploy.md, in `DOCKER-USER`; deleted, by its exact spec, when dropped.
struct KeepToAddress(Vec<String>);

impl KeepToAddress {
    fn insert(port: u16, chosen: &str) -> KeepToAddress {
        let spec =
            format!("-p tcp -m conntrack --ctorigdstport {port} ! --ctorigdst {chosen} -j DROP");
        let spec: Vec<String> = spec.split(' ').map(str::to_owned).collect();
        let mut args = vec!["-I", "DOCKER-USER"];
        args.extend(spec.iter().map(String::as_str));
        run("iptables", &args);
        KeepToAddress(spec)
    }
}

impl Drop for KeepToAddress {
    fn drop(&mut self) {
        let mut args = vec!["-D".to_owned(), "DOCKER-USER".to_owned()];
        args.extend(self.0.iter().cloned());
        let _ = Command::new("iptables").args(&args).output();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("0.0.0.0:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn the_docker_user_rule_keeps_a_published_port_to_the_chosen_address() {
    ensure_test_image();
    let port = free_port();
    let publish = format!("mode=host,target=8080,published={port}");
    let _service = TestService::create(
        &crate::common::Engine::Host,
        "port",
        &["--replicas", "1", "--publish", &publish],
        &[],
        &[TEST_IMAGE, "httpd", "-f", "-p", "8080"],
    );
    let client = Client::create();
    let started = Instant::now();
    while !client.answered(&client.chosen, port) {
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the published port never answered at {}:{port}",
            client.chosen
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // Without the rule, every address of the node answers: what moby/moby#26696 is about.
    assert!(
        client.answered(&client.other, port),
        "{}:{port}",
        client.other
    );
    let rule = KeepToAddress::insert(port, &client.chosen);
    assert!(
        client.answered(&client.chosen, port),
        "{}:{port}",
        client.chosen
    );
    assert!(
        !client.answered(&client.other, port),
        "{}:{port} still answers with the rule",
        client.other
    );
    println!(
        "port {port}: {} answers, {} does not once the DOCKER-USER rule is in",
        client.chosen, client.other
    );
    drop(rule);
    assert!(
        client.answered(&client.other, port),
        "{}:{port}",
        client.other
    );
}
