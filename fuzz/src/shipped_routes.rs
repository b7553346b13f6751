//! The route table shipped in `config/cedar-gate.yaml`, loaded once; shared by the fuzz
//! targets that classify requests.

use std::sync::OnceLock;

use cedar_gate::classify::Routes;
use cedar_gate::config::Config;

pub fn routes() -> &'static Routes {
    static ROUTES: OnceLock<Routes> = OnceLock::new();
    ROUTES.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/cedar-gate.yaml");
        let text = std::fs::read_to_string(path).expect("example config");
        Config::from_yaml(&text)
            .expect("example config is valid")
            .routes
    })
}
