// The console's built files are embedded (`src/console.rs`): a file added
// to or removed from `console/dist` must rebuild the crate, which the
// embedding macro alone does not tell cargo.
fn main() {
    println!("cargo:rerun-if-changed=console/dist");
}
