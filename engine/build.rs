// The migrations are embedded at compile time (refinery's embed_migrations!): rebuild when any
// of them changes, not only when a Rust file of this crate does.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
