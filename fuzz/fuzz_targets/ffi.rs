#![no_main]
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use virtpci_fuzz::harness::{ffi, FfiHosts, SIMULATED_HOSTS};

static HOSTS: OnceLock<FfiHosts> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let hosts = HOSTS.get_or_init(|| {
        FfiHosts::new(Some(include_str!(
            "../../tests/fixtures/hosts/quad-nic.json"
        )))
        .with_simulated(&SIMULATED_HOSTS)
    });
    ffi(data, hosts);
});
