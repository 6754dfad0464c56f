//! `virtpci abi-diff` and `virtpci assign --explain` from the command line.

use std::process::Command;

const OLD: &str = "<domain type='qemu'><name>g</name><os><type machine='pc'>hvm</type></os><devices>\
    <interface type='user'><mac address='52:54:00:00:00:01'/><model type='virtio'/><address type='pci' bus='0' slot='5' function='0'/></interface>\
    <interface type='user'><mac address='52:54:00:00:00:02'/><model type='virtio'/><address type='pci' bus='0' slot='5' function='1'/></interface>\
    </devices></domain>";

fn write(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("virtpci-abi-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn virtpci(args: &[&std::ffi::OsStr]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_virtpci"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn abi_diff_text_json_and_strict() {
    let old = write("old.xml", OLD);
    let new_text = OLD.replace(
        "<interface type='user'><mac address='52:54:00:00:00:02'/><model type='virtio'/><address type='pci' bus='0' slot='5' function='1'/></interface>",
        "",
    );
    let new = write("new.xml", &new_text);
    let (rc, out, _) = virtpci(&["abi-diff".as_ref(), old.as_os_str(), new.as_os_str()]);
    assert_eq!(rc, 0);
    assert!(
        out.contains("multifunction bit flipped: on -> off"),
        "{out}"
    );
    let (rc, out, err) = virtpci(&[
        "abi-diff".as_ref(),
        "--json".as_ref(),
        "--strict".as_ref(),
        old.as_os_str(),
        new.as_os_str(),
    ]);
    assert_eq!(rc, 1);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["guest_visible_changes"], 2);
    assert_eq!(json["changes"][0]["kind"], "multifunction-flipped");
    assert!(err.contains("guest PCI ABI changed"), "{err}");
    let (rc, out, _) = virtpci(&[
        "abi-diff".as_ref(),
        "--strict".as_ref(),
        old.as_os_str(),
        old.as_os_str(),
    ]);
    assert_eq!(rc, 0);
    assert!(out.contains("PCI ABI unchanged"), "{out}");
}

#[test]
fn assign_explain_and_strict_function0() {
    let lone = write(
        "lone.xml",
        "<domain type='qemu'><name>g</name><os><type machine='pc'>hvm</type></os><devices>\
         <interface type='user'><mac address='52:54:00:00:00:01'/><model type='e1000'/><address type='pci' bus='0' slot='5' function='2'/></interface>\
         <interface type='user'><mac address='52:54:00:00:00:02'/><model type='virtio'/></interface>\
         </devices></domain>",
    );
    let (rc, out, _) = virtpci(&["assign".as_ref(), "--explain".as_ref(), lone.as_os_str()]);
    assert_eq!(rc, 0);
    assert!(
        out.contains("0000:00:05.2  interface (mac 52:54:00:00:00:01): written in the definition"),
        "{out}"
    );
    assert!(
        out.contains("interface (mac 52:54:00:00:00:02): first free place"),
        "{out}"
    );
    assert!(
        out.contains("warning: guest PCI slot 0000:00:05 is used without function 0"),
        "{out}"
    );
    let (rc, out, _) = virtpci(&[
        "assign".as_ref(),
        "--explain".as_ref(),
        "--json".as_ref(),
        lone.as_os_str(),
    ]);
    assert_eq!(rc, 0);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["warnings"][0]["kind"], "slot-without-function-zero");
    assert_eq!(json["warnings"][0]["slot"], "0000:00:05.0");
    let (rc, _, err) = virtpci(&["assign".as_ref(), lone.as_os_str()]);
    assert_eq!(rc, 0);
    assert!(
        err.contains("warning: guest PCI slot 0000:00:05 is used without function 0"),
        "{err}"
    );
    let (rc, _, err) = virtpci(&[
        "assign".as_ref(),
        "--strict-function0".as_ref(),
        lone.as_os_str(),
    ]);
    assert_eq!(rc, 1);
    assert!(
        err.contains("has functions above 0 but no function 0"),
        "{err}"
    );
}
