//! Elements of the page: finding them by CSS selector, clicking, typing, reading their text,
//! attributes and properties (W3C element references).

use reqwest::Method;
use serde_json::{Value, json};

use super::{Browser, WdError};

/// W3C's key for an element reference in JSON.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    /// The first element matching `css`, or `None`.
    pub(crate) async fn try_find(&self, css: &str) -> Option<Element<'_>> {
        match self
            .try_cmd(
                Method::POST,
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await
        {
            Ok(v) => Some(Element::from_json(self, &v)),
            Err(e) if e.error == "no such element" => None,
            Err(e) => panic!("{}: find {css}: {e}", self.name),
        }
    }

    /// The first element matching `css`; panics without one.
    pub(crate) async fn find(&self, css: &str) -> Element<'_> {
        match self.try_find(css).await {
            Some(el) => el,
            None => panic!(
                "{}: no element {css}\n{}",
                self.name,
                self.diagnostics().await
            ),
        }
    }

    /// Every element matching `css`.
    pub(crate) async fn find_all(&self, css: &str) -> Vec<Element<'_>> {
        let v = self
            .cmd(
                Method::POST,
                "/elements",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        v.as_array()
            .map(|a| a.iter().map(|v| Element::from_json(self, v)).collect())
            .unwrap_or_default()
    }

    /// Clicks the first element matching `css`.
    pub(crate) async fn click(&self, css: &str) {
        self.find(css).await.click().await;
    }

    /// Replaces the text of the input matching `css` by typing `text`.
    pub(crate) async fn set_value(&self, css: &str, text: &str) {
        let el = self.find(css).await;
        el.clear().await;
        el.send_keys(text).await;
    }

    /// Chooses `value` in the `<select>` matching `css`, as a person would (a `change` event).
    pub(crate) async fn select(&self, css: &str, value: &str) {
        let ok = self
            .execute(
                "const el = document.querySelector(arguments[0]);
                 if (!el) return false;
                 el.value = arguments[1];
                 el.dispatchEvent(new Event('input', {bubbles: true}));
                 el.dispatchEvent(new Event('change', {bubbles: true}));
                 return el.value === arguments[1];",
                vec![json!(css), json!(value)],
            )
            .await;
        assert_eq!(
            ok,
            true,
            "{}: cannot choose {value:?} in {css}\n{}",
            self.name,
            self.diagnostics().await
        );
    }

    /// The text of the first element matching `css`.
    pub(crate) async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await
    }
}

/// An element of a [`Browser`]'s page (a W3C element reference).
pub(crate) struct Element<'a> {
    b: &'a Browser,
    id: String,
}

impl<'a> Element<'a> {
    fn from_json(b: &'a Browser, v: &Value) -> Self {
        let id = v[ELEMENT_KEY]
            .as_str()
            .unwrap_or_else(|| panic!("not an element reference: {v}"))
            .to_owned();
        Self { b, id }
    }

    /// The reference, to pass an element to a script.
    pub(crate) fn to_json(&self) -> Value {
        json!({ ELEMENT_KEY: self.id })
    }

    async fn get(&self, what: &str) -> Value {
        self.b
            .cmd(
                Method::GET,
                &format!("/element/{}{what}", self.id),
                Value::Null,
            )
            .await
    }

    async fn post(&self, what: &str, body: Value) -> Result<Value, WdError> {
        self.b
            .try_cmd(Method::POST, &format!("/element/{}{what}", self.id), body)
            .await
    }

    /// Clicks it (scrolled into view; refused when another element covers it).
    pub(crate) async fn try_click(&self) -> Result<(), WdError> {
        self.post("/click", json!({})).await.map(drop)
    }

    /// [`Element::try_click`], panicking on a refusal.
    pub(crate) async fn click(&self) {
        if let Err(e) = self.try_click().await {
            panic!(
                "{}: click: {e}\n{}",
                self.b.name,
                self.b.diagnostics().await
            );
        }
    }

    /// Types `text` into it.
    pub(crate) async fn send_keys(&self, text: &str) {
        if let Err(e) = self.post("/value", json!({ "text": text })).await {
            panic!("{}: send keys: {e}", self.b.name);
        }
    }

    /// Empties an input.
    pub(crate) async fn clear(&self) {
        if let Err(e) = self.post("/clear", json!({})).await {
            panic!("{}: clear: {e}", self.b.name);
        }
    }

    /// Its rendered text.
    pub(crate) async fn text(&self) -> String {
        self.get("/text")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// An attribute, `None` when absent.
    pub(crate) async fn attribute(&self, name: &str) -> Option<String> {
        self.get(&format!("/attribute/{name}"))
            .await
            .as_str()
            .map(str::to_owned)
    }

    /// A DOM property.
    pub(crate) async fn property(&self, name: &str) -> Value {
        self.get(&format!("/property/{name}")).await
    }

    /// Whether it is displayed.
    pub(crate) async fn displayed(&self) -> bool {
        self.get("/displayed").await == true
    }
}
