//! Choosing snapshots through the `arca` binary: --host, --tag, --path and --time on
//! `snapshots`, `ls` and `restore`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fs;

use common::*;

/// Ids (in order) of the snapshots `arca snapshots ARGS` lists.
fn listed(env: &Env, args: &[&str]) -> Vec<String> {
    let mut all = vec!["snapshots"];
    all.extend_from_slice(args);
    env.json(&all)
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn host_tag_path_and_time_narrow_the_choice() {
    let env = Env::new();
    let (etc, home) = (env.path("etc"), env.path("home"));
    write(&etc.join("hosts"), b"127.0.0.1 localhost\n");
    write(&home.join("notes"), b"version 1\n");
    env.init();
    let id = |v: serde_json::Value| v["snapshot_id"].as_str().unwrap().to_owned();
    let (etc_s, home_s) = (etc.to_str().unwrap(), home.to_str().unwrap());
    let a = id(env.json(&["backup", etc_s, "--host", "web1", "--tag", "daily,system"]));
    let b = id(env.json(&["backup", home_s, "--host", "web1", "--tag", "daily"]));
    settle();
    write(&home.join("notes"), b"version 2\n");
    let c = id(env.json(&["backup", home_s, "--host", "db1", "--tag", "weekly"]));

    assert_eq!(listed(&env, &[]), [a.as_str(), &b, &c]);
    assert_eq!(listed(&env, &["--host", "web1"]), [a.as_str(), &b]);
    assert_eq!(
        listed(&env, &["--host", "web1", "--host", "db1"]),
        [a.as_str(), &b, &c]
    );
    assert_eq!(listed(&env, &["--tag", "daily"]), [a.as_str(), &b]);
    assert_eq!(listed(&env, &["--tag", "daily,system"]), [a.as_str()]);
    assert_eq!(
        listed(&env, &["--tag", "system", "--tag", "weekly"]),
        [a.as_str(), &c]
    );
    assert_eq!(listed(&env, &["--path", home_s]), [b.as_str(), &c]);
    assert_eq!(listed(&env, &["--host", "nowhere"]), Vec::<String>::new());

    // `latest` is the newest snapshot that passes the filters.
    let ls = |args: &[&str]| {
        let mut all = vec!["ls", "latest"];
        all.extend_from_slice(args);
        env.ok(&all)
    };
    assert!(ls(&["--host", "web1", "--path", home_s]).contains("notes"));
    assert!(ls(&["--tag", "system"]).contains("hosts"));
    assert!(!ls(&["--tag", "system"]).contains("notes"));

    // --time: the newest at or before the moment; the time `snapshots` prints for a
    // snapshot selects that snapshot even though it is shown to the second.
    let b_time = env.json(&["snapshots"]).as_array().unwrap()[1]["time"]
        .as_str()
        .unwrap()
        .to_owned();
    let b_time_to_second = format!("{}{}", &b_time[..19], &b_time[b_time.len() - 6..]);
    assert_eq!(
        listed(&env, &["--time", &b_time_to_second]),
        [a.as_str(), &b],
        "{b_time_to_second}"
    );
    let target = env.path("restored");
    env.ok(&[
        "restore",
        "latest",
        "--path",
        home_s,
        "--time",
        &b_time_to_second,
        "--target",
        target.to_str().unwrap(),
    ]);
    let restored = target.join(home.strip_prefix("/").unwrap()).join("notes");
    assert_eq!(fs::read(restored).unwrap(), b"version 1\n");
    assert_eq!(listed(&env, &["--time", "now"]), [a.as_str(), &b, &c]);
    assert_eq!(
        listed(&env, &["--time", "1Y"]),
        Vec::<String>::new(),
        "nothing is a year old"
    );

    // An id outside the filter is not found; a bad time is a usage error.
    let out = env.expect(1, &["ls", &c[..8], "--host", "web1"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no snapshot matches"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = env.run(&["snapshots", "--time", "yesterday"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid time \"yesterday\""));
    let out = env.run(&["ls", "latest", "--host", "nowhere"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no snapshot matches the given host"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
