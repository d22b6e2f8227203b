//! The page around a report: head, inline style sheet, outcome legend.

use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::timeline::Kind;

const STYLE: &str = include_str!("style.css");

/// A whole document titled `title` around `body`.
pub(super) fn page(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                (legend())
                (body)
            }
        }
    }
}

/// What each bar colour means.
fn legend() -> Markup {
    html! {
        div.legend {
            "outcome: "
            @for kind in Kind::ALL {
                span class={ "swatch " (kind.css()) } { (kind.label()) }
            }
            span.swatch.fault-swatch { "fault in force" }
            span.swatch.offending-swatch { "broke the invariant" }
        }
    }
}
