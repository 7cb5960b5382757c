//! The committed `crds/` files must be exactly what the code generates.

use swarmpilot::policy::schema::{crd_yaml, json_schema_text, CRD_FILE, SCHEMA_FILE};

fn assert_committed(name: &str, generated: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("crds")
        .join(name);
    let committed = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
    assert!(
        committed == generated,
        "crds/{name} differs from what the code generates; run `cargo run -- schema --out-dir crds` and commit the result"
    );
}

#[test]
fn committed_json_schema_is_current() {
    assert_committed(SCHEMA_FILE, &json_schema_text());
}

#[test]
fn committed_crd_is_current() {
    assert_committed(CRD_FILE, &crd_yaml());
}
