// The migrations are embedded by `sqlx::migrate!`: a new or changed file rebuilds the API.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
