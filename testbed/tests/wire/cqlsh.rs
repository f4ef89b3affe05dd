//! cqlsh (PyPI `cqlsh`) against the testbed: connects (driver protocol negotiation, schema
//! metadata) and runs SELECTs on system and user tables. cqlsh must be installed; the test
//! fails, never skips, without it.

use std::process::Command;

use crate::client::testbed;

fn cqlsh(statements: &str) -> String {
    let addr = testbed();
    let output = match Command::new("cqlsh")
        .args([&addr.ip().to_string(), &addr.port().to_string(), "--request-timeout", "30", "-e", statements])
        .output()
    {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "cqlsh is not installed (not on PATH): install it with `pip install cqlsh==6.2.2` to run this test"
        ),
        Err(e) => panic!("cannot run cqlsh: {e}"),
    };
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "cqlsh failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    assert!(
        !stderr.contains("Error"),
        "cqlsh reported an error:\n{stderr}"
    );
    stdout
}

#[test]
fn cqlsh_selects_system_and_user_tables() {
    let ks = format!("cqlsh_{}", std::process::id());
    let out = cqlsh(&format!(
        "SELECT cluster_name, release_version FROM system.local;
         CREATE KEYSPACE {ks} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}};
         CREATE TABLE {ks}.users (id uuid PRIMARY KEY, name text, tags set<text>, born date, seen timestamp);
         INSERT INTO {ks}.users (id, name, tags, born, seen) VALUES (5b6962dd-3f90-4c93-8f61-eabfa4a803e2, 'Ada', {{'x', 'y'}}, '1815-12-10', '2024-01-02 03:04:05+0000');
         SELECT name, tags, born, seen FROM {ks}.users;
         SELECT keyspace_name, table_name FROM system_schema.tables WHERE keyspace_name = '{ks}';"
    ));
    assert!(
        out.contains("userstream-testbed"),
        "system.local row missing:\n{out}"
    );
    assert!(out.contains("Ada"), "user row missing:\n{out}");
    assert!(out.contains("{'x', 'y'}"), "set column missing:\n{out}");
    assert!(out.contains("1815-12-10"), "date column missing:\n{out}");
    assert!(
        out.contains("2024-01-02 03:04:05"),
        "timestamp column missing:\n{out}"
    );
    assert!(out.contains("users"), "schema table row missing:\n{out}");
}
