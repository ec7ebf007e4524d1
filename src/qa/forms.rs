//! QA scoring forms and scores. A form is a list of items, each passed or not, with a
//! weight; the total is the weight passed out of the weight in all, 0–100. The default
//! form follows the seeds (SERVICE-RULES.md "Answering"; seeds 000–004). A saved score
//! never changes: a correction is a new version that names its reason.

use serde::{Deserialize, Serialize};

/// `[[qa.forms]]`: a scoring form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FormConfig {
    /// Key used in the API (`"standard"`).
    pub name: String,
    pub title: String,
    pub items: Vec<ItemConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemConfig {
    pub key: String,
    pub label: String,
    pub weight: u32,
}

fn item(key: &str, label: &str, weight: u32) -> ItemConfig {
    ItemConfig {
        key: key.into(),
        label: label.into(),
        weight,
    }
}

/// The seeds' form.
pub fn default_form() -> FormConfig {
    FormConfig {
        name: "standard".into(),
        title: "通话质检表 · call QA form".into(),
        items: vec![
            item(
                "greeting",
                "问候语含公司名和工号 · greeting with company and employee number (您好,××物流××工号为您服务)",
                15,
            ),
            item("polite", "使用礼貌用语 · polite phrases (请、谢谢、对不起)", 15),
            item("no_forbidden", "无服务禁语 · no forbidden phrases", 20),
            item("restated", "复述客户问题 · restated the customer's problem", 15),
            item("within_3_min", "3分钟内解答 · answered within three minutes", 10),
            item(
                "anything_else",
                "询问是否还有其他问题 · asked \"anything else I can help with?\"",
                10,
            ),
            item(
                "customer_hung_up_first",
                "客户先挂机 · let the customer hang up first",
                15,
            ),
        ],
    }
}

/// Problems of the configured forms as (key, message); keys relative to `qa`.
pub fn validate_forms(forms: &[FormConfig]) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    let mut names = std::collections::HashSet::new();
    for (i, form) in forms.iter().enumerate() {
        let at = format!("forms[{i}]");
        if form.name.trim().is_empty() || !names.insert(form.name.as_str()) {
            problems.push((format!("{at}.name"), "empty or used twice".into()));
        }
        if form.items.is_empty() {
            problems.push((
                format!("{at}.items"),
                "a form needs at least one item".into(),
            ));
        }
        let mut keys = std::collections::HashSet::new();
        for (j, item) in form.items.iter().enumerate() {
            if item.key.trim().is_empty() || !keys.insert(item.key.as_str()) {
                problems.push((format!("{at}.items[{j}].key"), "empty or used twice".into()));
            }
        }
        if form.items.iter().map(|i| i.weight).sum::<u32>() == 0 {
            problems.push((format!("{at}.items"), "the weights add up to 0".into()));
        }
    }
    problems
}

/// One item as scored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ScoredItem {
    pub key: String,
    pub label: String,
    pub weight: u32,
    pub passed: bool,
}

/// A saved score version.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Score {
    pub id: String,
    pub call_id: String,
    pub version: i64,
    pub form: String,
    pub items: Vec<ScoredItem>,
    pub total: f64,
    pub comment: String,
    pub reason: Option<String>,
    pub supersedes: Option<String>,
    pub author: String,
    pub created_at: i64,
}

/// `POST /api/calls/{id}/scores`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScoreInput {
    /// Form name; the first configured form when absent.
    pub form: Option<String>,
    /// Every item of the form: key → passed.
    pub items: std::collections::BTreeMap<String, bool>,
    #[serde(default)]
    pub comment: String,
    /// Required for a correction (when the call already has a score).
    pub reason: Option<String>,
}

/// Checks `input` against `form`: every item answered, none unknown. Returns the scored
/// items and the total (one decimal).
pub fn score(form: &FormConfig, input: &ScoreInput) -> Result<(Vec<ScoredItem>, f64), Vec<String>> {
    let mut problems = Vec::new();
    for key in input.items.keys() {
        if !form.items.iter().any(|i| &i.key == key) {
            problems.push(format!("items.{key}: not an item of form {:?}", form.name));
        }
    }
    let mut items = Vec::new();
    for item in &form.items {
        match input.items.get(&item.key) {
            Some(&passed) => items.push(ScoredItem {
                key: item.key.clone(),
                label: item.label.clone(),
                weight: item.weight,
                passed,
            }),
            None => problems.push(format!("items.{}: not answered ({})", item.key, item.label)),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let all: u32 = items.iter().map(|i| i.weight).sum();
    let passed: u32 = items.iter().filter(|i| i.passed).map(|i| i.weight).sum();
    let total = if all == 0 {
        0.0
    } else {
        (f64::from(passed) * 1000.0 / f64::from(all)).round() / 10.0
    };
    Ok((items, total))
}

/// A tag or comment at a moment of the recording.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Annotation {
    pub id: String,
    pub call_id: String,
    pub at_ms: i64,
    pub tag: String,
    pub comment: String,
    pub author: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AnnotationInput {
    pub at_ms: i64,
    #[serde(default)]
    pub tag: String,
    #[serde(default)]
    pub comment: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(passed: bool) -> ScoreInput {
        ScoreInput {
            form: None,
            items: default_form()
                .items
                .iter()
                .map(|i| (i.key.clone(), passed))
                .collect(),
            comment: String::new(),
            reason: None,
        }
    }

    #[test]
    fn the_default_form_weighs_100() {
        let form = default_form();
        assert_eq!(form.items.iter().map(|i| i.weight).sum::<u32>(), 100);
        assert!(validate_forms(&[form]).is_empty());
    }

    #[test]
    fn totals_are_the_weight_passed() {
        let form = default_form();
        assert_eq!(score(&form, &all(true)).unwrap().1, 100.0);
        assert_eq!(score(&form, &all(false)).unwrap().1, 0.0);
        let mut input = all(true);
        input.items.insert("no_forbidden".into(), false);
        assert_eq!(score(&form, &input).unwrap().1, 80.0);
    }

    #[test]
    fn every_item_must_be_answered_and_none_invented() {
        let form = default_form();
        let mut input = all(true);
        input.items.remove("greeting");
        input.items.insert("charm".into(), true);
        let problems = score(&form, &input).unwrap_err().join("\n");
        assert!(problems.contains("items.greeting: not answered"));
        assert!(problems.contains("items.charm: not an item"));
    }

    #[test]
    fn bad_forms_are_reported() {
        let mut form = default_form();
        form.items.push(form.items[0].clone());
        let problems = validate_forms(&[form.clone(), form]);
        let keys: Vec<&str> = problems.iter().map(|(k, _)| k.as_str()).collect();
        assert!(keys.contains(&"forms[0].items[7].key"));
        assert!(keys.contains(&"forms[1].name"));
    }
}
