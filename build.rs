// The shared object a C daemon links is named after its ABI, not after cargo's output file,
// and must never be unloaded (Rust thread-local destructors may outlive a dlclose).
fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libvirtpci.so.0");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
    println!("cargo:rerun-if-changed=build.rs");
}
