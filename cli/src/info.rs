//! `vkfuse info [--json] [--members M1,M2..]`: the members vkfuse finds, why any were skipped,
//! the fused device and what each member limits.

use serde_json::Value;

use crate::args::{split_list, unknown, CliError, Parser, Token};
use crate::env;

pub const USAGE: &str = "\
vkfuse info [--json] [--members M1,M2..]
    Loads the member drivers the way the ICD does and shows them, why any were skipped, the
    fused device and which member limits what. --members sets VKFUSE_ICDS for this query
    (short names lavapipe|lvp|swiftshader or manifest paths). --json prints the ICD's report.";

pub fn main(args: Vec<String>) -> Result<i32, CliError> {
    let mut json = false;
    let mut members = None;
    let mut p = Parser::new(args);
    while let Some(token) = p.next_token()? {
        match token {
            Token::Flag(f) if f == "--json" => json = true,
            Token::Flag(f) if f == "--members" => members = Some(split_list(&p.value()?)),
            other => return Err(unknown("info", other)),
        }
    }
    if let Some(list) = members {
        let mut config = env::FusedConfig::default();
        config.set_members(&list)?;
        let joined = env::join_members(config.members.as_deref().unwrap_or_default())?;
        // The ICD's discovery reads VKFUSE_ICDS from this process's environment. Setting it here
        // is sound: no other thread exists yet (nothing Vulkan has been loaded).
        std::env::set_var("VKFUSE_ICDS", joined);
    }
    let report = vkfuse::report::info_json();
    if json {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| CliError::failure(format!("cannot format the report: {e}")))?;
        outln!("{text}");
    } else {
        out!("{}", render(&report));
    }
    Ok(0)
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("?")
}

fn number(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) => a.len().to_string(),
        _ => "?".to_string(),
    }
}

/// The report as text.
pub fn render(report: &Value) -> String {
    let mut out = String::new();
    let empty = Vec::new();
    let members = report
        .get("members")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let ok = members
        .iter()
        .filter(|m| m.get("status").and_then(Value::as_str) == Some("ok"))
        .count();
    out.push_str(&format!("Members: {} found, {ok} in use\n", members.len()));
    for m in members {
        let index = number(m, "index");
        let status = text(m, "status");
        out.push_str(&format!(
            "  [{index}] {status:<7} {}\n",
            text(m, "manifest")
        ));
        if status == "ok" {
            let mut details = vec![format!("Vulkan {}", text(m, "api_version"))];
            if let Some(driver) = m.get("driver_name").and_then(Value::as_str) {
                details.push(format!("driver {driver}"));
            }
            details.push(format!("{} device extensions", number(m, "extensions")));
            out.push_str(&format!(
                "        device  {} ({})\n",
                text(m, "device_name"),
                details.join(", ")
            ));
            out.push_str(&format!("        library {}\n", text(m, "library")));
        } else {
            let reason = m
                .get("reason")
                .and_then(Value::as_str)
                .unwrap_or("no reason given");
            out.push_str(&format!("        reason  {reason}\n"));
        }
    }
    match report.get("fused") {
        Some(fused) if fused.is_object() => {
            out.push_str("Fused device:\n");
            out.push_str(&format!("  name        {}\n", text(fused, "device_name")));
            out.push_str(&format!("  api         {}\n", text(fused, "api_version")));
            out.push_str(&format!(
                "  extensions  {} device extensions\n",
                number(fused, "device_extensions")
            ));
            if let Some(tiers) = fused.get("transfer_tiers").and_then(Value::as_array) {
                if !tiers.is_empty() {
                    out.push_str("  tiers between members (how they share data now):\n");
                }
                for t in tiers {
                    let (tier, best) = (text(t, "tier"), text(t, "best"));
                    let other = text(t, "not_host_visible");
                    let more = if tier == best && tier == other {
                        String::new()
                    } else if best == "shared device memory" {
                        " (their capabilities allow shared device memory: used for memory that is \
                         not host-visible, and for all memory with VKFUSE_SHARING=device)"
                            .to_string()
                    } else if tier == best {
                        format!(" (memory that is not host-visible: {other})")
                    } else {
                        format!(
                            " (their capabilities allow {best}; memory that is not host-visible: \
                             {other})"
                        )
                    };
                    out.push_str(&format!(
                        "    {} - {}  {tier}{more}; images: {}; waits: {}\n",
                        number(t, "a"),
                        number(t, "b"),
                        text(t, "images"),
                        text(t, "waits"),
                    ));
                }
            }
            let limited = fused
                .get("limited_by")
                .and_then(Value::as_array)
                .unwrap_or(&empty);
            if limited.is_empty() {
                out.push_str("  limited by  nothing: every member supports the same limits\n");
            } else {
                out.push_str("  limited by:\n");
                let mut by_member: Vec<(String, Vec<String>)> = Vec::new();
                for l in limited {
                    let member = number(l, "member");
                    let item = match l.get("value") {
                        Some(v) if !v.is_null() => {
                            format!("{} = {}", text(l, "what"), display_value(Some(v)))
                        }
                        _ => text(l, "what").to_string(),
                    };
                    match by_member.iter_mut().find(|(m, _)| *m == member) {
                        Some((_, items)) => items.push(item),
                        None => by_member.push((member, vec![item])),
                    }
                }
                for (member, items) in by_member {
                    out.push_str(&format!("    member {member} ({} values):\n", items.len()));
                    for item in items {
                        out.push_str(&format!("      {item}\n"));
                    }
                }
            }
        }
        _ => out.push_str(
            "Fused device: none (no member in use: the ICD reports no physical device)\n",
        ),
    }
    match env::library() {
        Ok(lib) => out.push_str(&format!("vkfuse run/install use {}\n", lib.display())),
        Err(e) => out.push_str(&format!("vkfuse run/install: {e}\n")),
    }
    out
}

fn display_value(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => "?".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_members_skips_and_limits() {
        let report = serde_json::json!({
            "members": [
                {"index": 0, "manifest": "/a/lvp.json", "library": "/a/lvp.so", "status": "ok",
                 "reason": null, "device_name": "llvmpipe", "api_version": "1.3.230",
                 "driver_name": "llvmpipe", "extensions": 120},
                {"index": 1, "manifest": "/a/bad.json", "library": "", "status": "skipped",
                 "reason": "not valid JSON"}
            ],
            "fused": {"device_name": "vkfuse (llvmpipe)", "api_version": "1.3.230",
                      "device_extensions": ["VK_KHR_swapchain"],
                      "limited_by": [{"what": "maxImageDimension2D", "member": 0, "value": "8192"}]}
        });
        let text = render(&report);
        assert!(text.contains("2 found, 1 in use"));
        assert!(text.contains("reason  not valid JSON"));
        assert!(text.contains("vkfuse (llvmpipe)"));
        assert!(text.contains("1 device extensions"));
        assert!(text.contains("maxImageDimension2D = 8192"));
        let none = render(&serde_json::json!({"members": [], "fused": null}));
        assert!(none.contains("Fused device: none"));
    }
}
