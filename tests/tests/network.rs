//! Stage 08: the container's network, end to end — inside network
//! namespaces these tests make (see `minibox_tests::netns`), never the
//! machine's own.

use minibox_tests::netns::Sandbox;
use minibox_tests::{cgroup_mode, redact_trace, require_root, stderr, stdout};
use std::collections::BTreeSet;

const STAGE: &str = "08-network";

/// The script's output, with a check that it succeeded.
fn run(sandbox: &Sandbox, script: &str) -> String {
    let out = sandbox.run(script);
    assert!(
        out.status.success(),
        "the sandbox script failed ({:?}):\n--- stdout\n{}--- stderr\n{}",
        out.status,
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// `KEY=value` lines of a script's output.
fn field<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= in:\n{text}"))
}

/// Everything the issue asks of the bridge network, in one world: names,
/// NAT to an upstream, published ports (TCP and UDP, via the host's address
/// and 127.0.0.1), hairpin, a port claimed twice, and nothing left after
/// `rm` and `cleanup`.
#[test]
fn the_bridge_network_end_to_end() {
    require_root!();
    let sandbox = Sandbox::new(STAGE);
    let out = run(
        &sandbox,
        r#"
upstream
BEFORE=$(net_state)
mkdir -p "$SANDBOX/tools" && cp "$UDP_ECHO" "$SANDBOX/tools/"
$B run -d --name web -p 8080:80 -p 127.0.0.1:5353:53/udp -p 5354:53/udp -v "$SANDBOX/tools:/tools:ro" busybox \
    sh -c 'mkdir /www; echo hello-from-web > /www/index.html; /tools/udp_echo 53 & httpd -f -p 80 -h /www' >/dev/null
until $B exec web sh -c 'netstat -ln | grep -q ":80 "' 2>/dev/null; do sleep 0.05; done
WEB=$($B exec web sh -c "ip -4 -o addr show eth0 | awk '{print \$4}' | cut -d/ -f1")
echo "web_ip=$WEB"
echo "by_name=$($B run --rm busybox wget -qO- http://web/)"
echo "by_address=$($B run --rm busybox wget -qO- http://$WEB/)"
echo "upstream_sees=$($B run --rm busybox wget -qO- http://192.0.2.2/cgi-bin/ip)"
echo "host_loopback=$("$BB" wget -qO- http://127.0.0.1:8080/)"
echo "host_address=$("$BB" wget -qO- http://192.0.2.1:8080/)"
echo "udp_loopback=$("$UDP_ECHO" 127.0.0.1 5353 ping)"
echo "udp_address=$("$UDP_ECHO" 192.0.2.1 5354 ping2)"
echo "hairpin=$($B exec web wget -qO- http://192.0.2.1:8080/)"
echo "port=$($B port web | tr '\n' ';')"
echo "ps=$($B ps | grep ' web ' | tr -s ' ')"
$B run --rm -p 8080:80 busybox true 2>"$SANDBOX/second.err"; echo "second_rc=$?"
echo "second_err=$(cat "$SANDBOX/second.err")"
echo "ipv6=$($B run --rm busybox cat /proc/sys/net/ipv6/conf/all/disable_ipv6)"
echo "ipv6_asked=$($B run --rm --ipv6 busybox cat /proc/sys/net/ipv6/conf/all/disable_ipv6)"
echo "lo_and_eth0=$($B run --rm busybox ls /sys/class/net | tr '\n' ' ')"
$B rm -f web >/dev/null
$B cleanup >/dev/null
echo "$BEFORE" > "$SANDBOX/before"; net_state > "$SANDBOX/after"
cmp -s "$SANDBOX/before" "$SANDBOX/after" && echo "state=restored" || { echo "state=changed"; diff "$SANDBOX/before" "$SANDBOX/after"; }
"#,
    );
    let web = field(&out, "web_ip");
    assert!(web.starts_with("10.123."), "{out}");
    assert_eq!(field(&out, "by_name"), "hello-from-web");
    assert_eq!(field(&out, "by_address"), "hello-from-web");
    assert_eq!(
        field(&out, "upstream_sees"),
        "192.0.2.1",
        "masqueraded as the host"
    );
    assert_eq!(field(&out, "host_loopback"), "hello-from-web");
    assert_eq!(field(&out, "host_address"), "hello-from-web");
    assert_eq!(field(&out, "udp_loopback"), "pong:ping");
    assert_eq!(field(&out, "udp_address"), "pong:ping2");
    assert_eq!(field(&out, "hairpin"), "hello-from-web");
    assert_eq!(
        field(&out, "port"),
        "80/tcp -> 0.0.0.0:8080;53/udp -> 127.0.0.1:5353;53/udp -> 0.0.0.0:5354;"
    );
    assert!(field(&out, "ps").contains(web), "{out}");
    assert_eq!(field(&out, "second_rc"), "125");
    assert_eq!(
        field(&out, "second_err"),
        "08-network: host port 8080/tcp is already published by container web"
    );
    assert_eq!(field(&out, "ipv6"), "1", "IPv6 is off inside");
    assert_eq!(field(&out, "ipv6_asked"), "0", "--ipv6 leaves it on");
    assert_eq!(field(&out, "lo_and_eth0"), "eth0 lo ");
    assert_eq!(field(&out, "state"), "restored", "{out}");
}

/// Twenty containers alive at once hold twenty addresses (each writes its
/// address into a shared volume and waits until all twenty have).
#[test]
fn concurrent_runs_get_distinct_addresses() {
    require_root!();
    let sandbox = Sandbox::new(STAGE);
    let out = run(
        &sandbox,
        r#"
mkdir "$SANDBOX/met"
for i in $(seq 20); do
    $B run --rm -v "$SANDBOX/met:/met" busybox sh -c \
        'ip -4 -o addr show eth0 | awk "{print \$4}" > /met/$HOSTNAME; until [ $(ls /met | wc -l) -ge 20 ]; do sleep 0.05; done' \
        2>"$SANDBOX/err.$i" &
done
wait
cat "$SANDBOX"/met/* "$SANDBOX"/err.*
$B cleanup >/dev/null
"#,
    );
    let addresses: BTreeSet<&str> = out.lines().collect();
    assert_eq!(addresses.len(), 20, "{out}");
}

/// A drop policy in someone else's forward chain (docker's FORWARD, ufw)
/// overrides minibox's accepts: run says so, with the fix, in one line.
#[test]
fn a_foreign_forward_drop_is_named() {
    require_root!();
    let sandbox = Sandbox::new(STAGE);
    let out = run(
        &sandbox,
        r#"
nft add table ip filter
nft 'add chain ip filter FORWARD { type filter hook forward priority 0; policy drop; }'
$B run --rm busybox true 2>"$SANDBOX/err"
cat "$SANDBOX/err"
"#,
    );
    let warning = out
        .lines()
        .find(|l| l.contains("warning"))
        .unwrap_or_else(|| panic!("no warning in: {out}"));
    assert!(
        warning.contains("chain FORWARD of table ip filter drops forwarded packets")
            && warning.contains("nft insert rule ip filter FORWARD"),
        "{warning}"
    );
}

/// `--network none`, `host` and `container:NAME`.
#[test]
fn the_other_network_modes() {
    require_root!();
    let sandbox = Sandbox::new(STAGE);
    let out = run(
        &sandbox,
        r#"
upstream
echo "none=$($B run --rm --network none busybox ls /sys/class/net | tr '\n' ' ')"
echo "host=$($B run --rm --network host busybox sh -c 'ip -o link | grep -c up0')"
$B run -d --name first busybox sleep 1000 >/dev/null
FIRST=$($B exec first sh -c "ip -4 -o addr show eth0 | awk '{print \$4}'")
echo "shared=$([ "$($B run --rm --network container:first busybox sh -c "ip -4 -o addr show eth0 | awk '{print \$4}'")" = "$FIRST" ] && echo same)"
$B rm -f first >/dev/null
$B cleanup >/dev/null
"#,
    );
    assert_eq!(field(&out, "none"), "lo ");
    assert_eq!(field(&out, "host"), "1", "the host's up0 is visible");
    assert_eq!(field(&out, "shared"), "same");
}

/// User networks: create, use, refuse an overlap, refuse rm while in use.
#[test]
fn user_networks() {
    require_root!();
    let sandbox = Sandbox::new(STAGE);
    let out = run(
        &sandbox,
        r#"
BEFORE=$(net_state)
$B network create backend --subnet 10.124.0.0/24
$B network create clash --subnet 10.124.0.0/16 2>"$SANDBOX/err"; echo "overlap_rc=$?"; echo "overlap=$(cat "$SANDBOX/err")"
$B run -d --name api --network backend busybox sleep 1000 >/dev/null
echo "addr=$($B exec api sh -c "ip -4 -o addr show eth0 | awk '{print \$4}'")"
$B network rm backend 2>"$SANDBOX/err"; echo "busy_rc=$?"; echo "busy=$(cat "$SANDBOX/err")"
$B network rm nosuch 2>/dev/null; echo "unknown_rc=$?"
$B network create 'bad name' --subnet 10.125.0.0/24 2>/dev/null; echo "bad_name_rc=$?"
echo "ls=$($B network ls | tr -s ' ' | tr '\n' ';')"
$B rm -f api >/dev/null
$B network rm backend
$B cleanup >/dev/null
[ "$(net_state)" = "$BEFORE" ] && echo "state=restored" || echo "state=changed"
"#,
    );
    // docker's rule: an action that failed is 1, a bad value 125.
    assert_eq!(field(&out, "overlap_rc"), "1");
    assert_eq!(
        field(&out, "overlap"),
        "08-network: subnet 10.124.0.0/16 overlaps network backend (10.124.0.0/24)"
    );
    assert_eq!(field(&out, "addr"), "10.124.0.2/24");
    assert_eq!(field(&out, "busy_rc"), "1");
    assert_eq!(field(&out, "unknown_rc"), "1");
    assert_eq!(field(&out, "bad_name_rc"), "125");
    assert!(
        field(&out, "busy").contains("is in use by container api"),
        "{out}"
    );
    assert!(
        field(&out, "ls").contains("backend mbx-backend 10.124.0.0/24 1"),
        "{out}"
    );
    assert_eq!(field(&out, "state"), "restored");
}

/// Bad input: one line, exit 125, nothing left (no lease, link or rule).
#[test]
fn bad_network_input_leaves_nothing() {
    require_root!();
    let sandbox = Sandbox::new(STAGE);
    let out = run(
        &sandbox,
        r#"
BEFORE=$(net_state)
try() { "$B" "$@" 2>"$SANDBOX/err" >/dev/null; echo "$? $(wc -l < "$SANDBOX/err") $(cat "$SANDBOX/err")"; }
echo "big_port=$(try run --rm -p 99999:80 busybox true)"
echo "not_a_port=$(try run --rm -p abc busybox true)"
echo "no_network=$(try run --rm --network nosuch busybox true)"
echo "publish_without_bridge=$(try run --rm --network none -p 80:80 busybox true)"
"$BB" nc -l -p 8081 >/dev/null & HOLDER=$!
until "$BB" netstat -ln | grep -q ':8081 '; do sleep 0.01; done
echo "port_in_use=$(try run --rm -p 8081:80 busybox true)"
kill $HOLDER
echo "leases=$(grep -c '"id"' "$MINIBOX_ROOT/network/state.json" 2>/dev/null || echo 0)"
echo "containers=$(ls "$MINIBOX_ROOT/containers" 2>/dev/null | wc -l)"
$B cleanup >/dev/null
[ "$(net_state)" = "$BEFORE" ] && echo "state=restored" || echo "state=changed"
"#,
    );
    for (key, message) in [
        ("big_port", "host port \"99999\" is not a port number"),
        ("not_a_port", "expected [HOSTIP:]HOSTPORT:CONTAINERPORT"),
        ("no_network", "no network \"nosuch\""),
        (
            "publish_without_bridge",
            "-p publishes ports of a bridge network",
        ),
        (
            "port_in_use",
            "host port 0.0.0.0:8081/tcp is in use on this machine",
        ),
    ] {
        let line = field(&out, key);
        assert!(line.starts_with("125 1 "), "{key}: {line}");
        assert!(line.contains(message), "{key}: {line}");
    }
    assert_eq!(field(&out, "leases"), "0");
    assert_eq!(field(&out, "containers"), "0");
    assert_eq!(field(&out, "state"), "restored");
}

/// The lesson's trace: a bridge-mode run, snapshotted per cgroup mode.
#[test]
fn trace_of_a_bridge_run() {
    require_root!();
    let sandbox = Sandbox::new(STAGE);
    let out = sandbox.run(
        r#"
$B run --rm --trace tree --hostname snapbox -p 8080:80 busybox /bin/sh -c 'echo hi' 2>"$SANDBOX/trace"
$B cleanup >/dev/null
cat "$SANDBOX/trace"
"#,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let trace = stdout(&out).replace("hi\n", "");
    let root = sandbox.root().display().to_string();
    let text = redact_trace(&trace).replace(&root, "[ROOT]").replace(
        &format!("{}-{}", minibox_tests::test_env().cgroup_parent, ""),
        "[PARENT]-",
    );
    let text = regex::Regex::new(r"\[PARENT\]-minibox-netns-\w+")
        .unwrap()
        .replace_all(&text, "[PARENT]")
        .into_owned();
    let text = regex::Regex::new(r"(mbx|mbp)[0-9a-f]{8}")
        .unwrap()
        .replace_all(&text, "${1}[ID]")
        .into_owned();
    let text = regex::Regex::new(r"(index|master): \d+")
        .unwrap()
        .replace_all(&text, "$1: [N]")
        .into_owned();
    let text = regex::Regex::new(r"netns of pid \d+")
        .unwrap()
        .replace_all(&text, "netns of pid [PID]")
        .into_owned();
    insta::assert_snapshot!(format!("trace_08_bridge_{}", cgroup_mode()), text);
}
