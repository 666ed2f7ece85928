//! The Weir editor: build, run and debug flows in the browser. See `ui/README.md`.

fn main() {
    leptos::mount::mount_to_body(weir_ui::session::Root);
}
