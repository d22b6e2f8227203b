//! What a simulated user types into the creation form. The harness fills
//! the form; a target file says where each field goes in the request
//! (`{name}`, `{description}`, `{level}` in the body template) and where
//! it shows in the answer, so the same scenarios drive any API.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One field of the form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum FormField {
    /// A text unique to the form session (it carries the run's nonce).
    Name,
    /// A longer text, the same on every form.
    Description,
    /// A small integer (0 to 9), drawn from the seed.
    Level,
}

impl FormField {
    /// Every field, in placeholder order.
    pub fn all() -> &'static [FormField] {
        <Self as clap::ValueEnum>::value_variants()
    }

    /// The placeholder name (`name`, `description`, `level`).
    pub fn placeholder(self) -> String {
        crate::value_name(&self)
    }
}

/// A filled-in form.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Form {
    /// See [`FormField::Name`].
    pub name: String,
    /// See [`FormField::Description`].
    pub description: String,
    /// See [`FormField::Level`].
    pub level: i64,
}

impl Form {
    /// A form named `name` at `level`.
    pub fn new(name: String, level: i64) -> Self {
        Self {
            name,
            description: "created by the idemproof harness".to_owned(),
            level,
        }
    }

    /// The value of `field`, typed (a string or a number).
    pub fn value(&self, field: FormField) -> Value {
        match field {
            FormField::Name => Value::from(self.name.clone()),
            FormField::Description => Value::from(self.description.clone()),
            FormField::Level => Value::from(self.level),
        }
    }

    /// The same form after the user edited `fields`: texts get
    /// " (edited)", the level moves to the next value.
    pub fn edited(&self, fields: &[FormField]) -> Self {
        let mut form = self.clone();
        for field in fields {
            match field {
                FormField::Name => form.name.push_str(" (edited)"),
                FormField::Description => form.description.push_str(" (edited)"),
                FormField::Level => form.level = (form.level + 1) % 10,
            }
        }
        form
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_change_only_the_named_fields() {
        let form = Form::new("a".into(), 9);
        let edited = form.edited(&[FormField::Level]);
        assert_eq!((edited.name.as_str(), edited.level), ("a", 0));
        assert_ne!(form.edited(&[FormField::Name]), form);
        assert_eq!(
            FormField::all().iter().map(|f| f.placeholder()).collect::<Vec<_>>(),
            ["name", "description", "level"]
        );
    }
}
