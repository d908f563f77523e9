//! The control surface: the page at `/` for a producer on show day.
//!
//! Its files (HTML, CSS, the ES module `surface.js` and the modules it imports from
//! `/surface/`, one per concern) are compiled into the binary, so the page works from
//! `cuecast` alone, offline, with nothing to install or fetch. The page is a
//! client of the public API and nothing else: it has no routes of its own beyond its
//! files. The Content-Security-Policy lets it talk to this daemon only, so a page that
//! tried to load anything from elsewhere would fail in the browser, not quietly work.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

const INDEX: &str = include_str!("surface/index.html");
const SCRIPT: &str = include_str!("surface/surface.js");
/// The modules `surface.js` imports, served under `/surface/`.
const MODULES: [(&str, &str); 5] = [
    ("api.js", include_str!("surface/modules/api.js")),
    ("events.js", include_str!("surface/modules/events.js")),
    ("status.js", include_str!("surface/modules/status.js")),
    ("steer.js", include_str!("surface/modules/steer.js")),
    ("show.js", include_str!("surface/modules/show.js")),
];
const STYLE: &str = include_str!("surface/surface.css");

/// Only this origin; `data:` for the blank favicon.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

fn file(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // The files change with the binary: always ask, so an upgrade shows at once.
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
}

/// `/`, `/surface.js`, its modules under `/surface/` and `/surface.css`.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let mut router = Router::new();
    for (name, body) in MODULES {
        router = router.route(
            &format!("/surface/{name}"),
            get(move || async move { file("text/javascript; charset=utf-8", body) }),
        );
    }
    router
        .route(
            "/",
            get(|| async { file("text/html; charset=utf-8", INDEX) }),
        )
        .route(
            "/surface.js",
            get(|| async { file("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route(
            "/surface.css",
            get(|| async { file("text/css; charset=utf-8", STYLE) }),
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::LazyLock;

    /// The whole script, its modules included, for the checks that read it.
    static SCRIPT: LazyLock<String> = LazyLock::new(|| {
        std::iter::once(super::SCRIPT)
            .chain(MODULES.iter().map(|(_, body)| *body))
            .collect::<Vec<_>>()
            .join("\n")
    });

    /// `surface.js` imports every module, each from where the router serves it, and
    /// the modules import only each other.
    #[test]
    fn the_modules_are_served_where_they_are_imported_from() {
        for (name, _) in MODULES {
            assert!(
                super::SCRIPT.contains(&format!("from './surface/{name}'")),
                "surface.js does not import {name}"
            );
        }
        for (name, body) in MODULES {
            for line in body.lines().filter(|l| l.starts_with("import ")) {
                let from = line.split('\'').nth(1).unwrap_or_default();
                let target = from.trim_start_matches("./");
                assert!(
                    MODULES.iter().any(|(n, _)| *n == target),
                    "{name} imports {from}, which is not served"
                );
            }
        }
    }

    /// Everything the page loads is served by [`router`], from this origin.
    #[test]
    fn the_page_loads_only_its_own_files() {
        for (attr, value) in [("src", "/surface.js"), ("href", "/surface.css")] {
            assert!(INDEX.contains(&format!("{attr}=\"{value}\"")), "{value}");
        }
        for text in [INDEX, SCRIPT.as_str(), STYLE] {
            assert!(!text.contains("http://") && !text.contains("https://"));
            assert!(!text.contains("@import") && !text.contains("url("));
        }
    }

    /// The cues the page sends are cues the cue schema (the one description of cues)
    /// accepts: each type it names, each field it sets, and exactly the schema's action
    /// axes, in the schema's order.
    #[test]
    fn the_script_speaks_the_cue_schema() {
        use cuecast_engine::schema::{schema, type_schema};
        let schema = schema();
        let list = |from: &str| -> Vec<String> {
            let body = &from[..from.find(']').unwrap()];
            body.split(',')
                .map(|x| x.trim().trim_matches('\'').to_owned())
                .collect()
        };
        let axes = list(&SCRIPT[SCRIPT.find("const AXES = [").unwrap() + 14..]);
        let action = type_schema(&schema, "action").unwrap();
        let schema_axes: Vec<String> = action["properties"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(_, p)| p["minimum"] == -1 && p["maximum"] == 1)
            .map(|(k, _)| k.clone())
            .collect();
        let mut schema_axes = schema_axes;
        schema_axes.sort();
        let mut sorted = axes.clone();
        sorted.sort();
        assert_eq!(sorted, schema_axes, "the page's axes");
        assert_eq!(
            axes,
            cuecast_engine::cue::ACTION_AXES,
            "the page's axis order"
        );
        // Every key binding moves one of them.
        let moves = &SCRIPT[SCRIPT.find("const MOVES = {").unwrap()..];
        let moves = &moves[..moves.find("};").unwrap()];
        for binding in moves.split("['").skip(1) {
            let axis = &binding[..binding.find('\'').unwrap()];
            assert!(axes.iter().any(|a| a == axis), "key moves {axis}");
        }
        // Every cue the page sends: `cue({ type: 'T', field, field: value, ...spread })`.
        let mut sent = Vec::new();
        for call in SCRIPT.split("cue({ type: '").skip(1) {
            let ty = &call[..call.find('\'').unwrap()];
            let t = type_schema(&schema, ty).unwrap_or_else(|| panic!("the page sends {ty}"));
            let body = &call[call.find('\'').unwrap() + 1..call.find('}').unwrap()];
            for field in body.split(',').map(str::trim).filter(|f| !f.is_empty()) {
                let name = field.split(':').next().unwrap().trim();
                if name.starts_with("...") {
                    continue;
                }
                assert!(
                    t["properties"].get(name).is_some(),
                    "{ty} has no field {name}"
                );
            }
            sent.push(ty);
        }
        assert!(sent.len() >= 3, "{} cue calls found", sent.len());
        for ty in ["input", "image"] {
            assert!(sent.contains(&ty), "the page sends no {ty} cue");
        }
    }

    /// Play mode's input cues and the start images' names are what the cue schema
    /// allows: the mouse message's fields, the buttons (in `MouseEvent.button` order),
    /// the pointer's bound and the image name pattern.
    #[test]
    fn play_mode_and_images_speak_the_cue_schema() {
        use cuecast_engine::cue::IMAGE_NAME_PATTERN;
        use cuecast_engine::schema::{schema, type_schema};
        let input = type_schema(&schema(), "input").unwrap();
        let mouse = &input["properties"]["mouse"];
        let after = |marker: &str, end: &str| -> &str {
            let from = &SCRIPT
                [SCRIPT.find(marker).unwrap_or_else(|| panic!("no {marker}")) + marker.len()..];
            &from[..from.find(end).unwrap()]
        };
        for field in after("const mouse = {", "}").split(',').map(str::trim) {
            assert!(
                mouse["properties"].get(field).is_some(),
                "mouse has no field {field}"
            );
        }
        assert!(
            SCRIPT.contains("mouse.buttons = ") && mouse["properties"].get("buttons").is_some()
        );
        let buttons: Vec<&str> = after("const BUTTONS = [", "]")
            .split(',')
            .map(|b| b.trim().trim_matches('\''))
            .collect();
        // The DOM numbers them left 0, middle 1, right 2.
        assert_eq!(buttons, ["left", "middle", "right"]);
        assert_eq!(
            mouse["properties"]["buttons"]["items"]["enum"],
            serde_json::json!(buttons),
            "the page's buttons"
        );
        let max: f64 = after("const MAX_MOUSE_PX = ", ";").parse().unwrap();
        assert_eq!(mouse["properties"]["dx"]["maximum"], max);
        assert_eq!(mouse["properties"]["dy"]["minimum"], -max);
        assert_eq!(after("const IMAGE_NAME = /", "/;"), IMAGE_NAME_PATTERN);
        let image = type_schema(&schema(), "image").unwrap();
        assert_eq!(image["properties"]["name"]["pattern"], IMAGE_NAME_PATTERN);
    }

    /// Every element the script looks up by id exists in the page.
    #[test]
    fn the_script_finds_its_elements() {
        let mut rest = SCRIPT.as_str();
        let mut n = 0;
        while let Some(at) = rest.find("$('") {
            rest = &rest[at + 3..];
            let id = &rest[..rest.find('\'').unwrap()];
            assert!(INDEX.contains(&format!("id=\"{id}\"")), "no element #{id}");
            n += 1;
        }
        assert!(n > 30, "{n} lookups");
    }
}
