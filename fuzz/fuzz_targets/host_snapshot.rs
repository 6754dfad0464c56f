#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| virtpci_fuzz::harness::host_snapshot(data));
