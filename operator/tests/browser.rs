//! The operator page in a real browser: a redis-server with txu and a few deferred tasks
//! (pending and dead), the operator binary serving the page, and headless Chromium driven over
//! WebDriver to open both tabs, expand a row, filter, retry a dead task and drop a pending one;
//! each change is checked in Redis too. Screenshots go to `<target>/operator/`.
//!
//! Also the API as a user with few permissions: the page acts as the URL's user, so ACL
//! errors reach the page as they are.
//!
//! Needs Debian's `chromium` and `chromium-driver` (the test fails, saying so, without them),
//! and the module built (`cargo build --release` at the workspace root; `make test-operator`).

mod support;

use serde_json::json;
use support::webdriver::Browser;
use support::{
    config_set, defer, http, state, target_dir, task_ids, txu_info, wait_until, Operator,
    RedisServer, TempDir,
};

/// The tasks the test starts with.
struct Tasks {
    /// Dead (`RETRY 1`, died at its first retry): `SET op:dead:1`, `SET op:dead:2`.
    dead: [String; 2],
    /// Pending, waiting out a 10-minute backoff: `SET op:dead:1 later` (so a retried
    /// `op:dead:1` task waits behind it and stays pending), a two-command task, `SET op:p:3`,
    /// and a task deferred behind that one (its error: "waiting behind deferred task ...").
    pending: [String; 4],
}

fn submit(con: &mut redis::Connection) -> Tasks {
    // Dead tasks first: a tiny backoff, one attempt, and the fault still on at that attempt.
    config_set(con, "txu.backoff-base-ms", "1");
    config_set(con, "txu.backoff-max-ms", "5");
    config_set(con, "min-replicas-to-write", "1");
    let dead = [
        defer(con, 1, &[&["SET", "op:dead:1", "v"]]),
        defer(con, 1, &[&["SET", "op:dead:2", "v"]]),
    ];
    wait_until("both RETRY 1 tasks are dead", || {
        txu_info(con, "txu_tasks_dead") == 2 && txu_info(con, "txu_tasks_pending") == 0
    });
    // Pending tasks stay pending: their next attempt is 10 minutes away.
    config_set(con, "txu.backoff-base-ms", "600000");
    config_set(con, "txu.backoff-max-ms", "600000");
    let p1 = defer(con, 5, &[&["SET", "op:dead:1", "later"]]);
    let p2 = defer(
        con,
        5,
        &[
            &["SET", "op:p:2", "v"],
            &["HSET", "op:h", "greeting", "hello world"],
        ],
    );
    let p3 = defer(con, 5, &[&["SET", "op:p:3", "v"]]);
    let p4 = defer(con, 5, &[&["SET", "op:p:3", "again"]]);
    assert_eq!(txu_info(con, "txu_tasks_pending"), 4);
    assert_eq!(txu_info(con, "txu_tasks_dead"), 2);
    Tasks {
        dead,
        pending: [p1, p2, p3, p4],
    }
}

/// The task ids of the table's rows, in order.
fn rows(b: &Browser) -> Result<Vec<String>, String> {
    let v = b.exec(
        "return [...document.querySelectorAll('#tasks tr.task')].map(r => r.dataset.taskId)",
    )?;
    serde_json::from_value(v).map_err(|e| e.to_string())
}

fn sorted(ids: &[&String]) -> Vec<String> {
    let mut v: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// Waits until the table lists exactly `want` (in any order).
fn wait_rows(b: &Browser, what: &str, want: &[&String]) {
    let want = sorted(want);
    b.wait_for(what, |b| {
        let mut got = rows(b)?;
        got.sort();
        Ok((got == want).then_some(()))
    });
}

/// The `textContent` of the element with id `id` (the header is styled upper case).
fn text_content(b: &Browser, id: &str) -> String {
    let v = b
        .exec(&format!(
            "return document.getElementById('{id}').textContent"
        ))
        .unwrap();
    v.as_str().unwrap_or_default().to_string()
}

/// Waits until the element's text is `want`.
fn wait_text(b: &Browser, css: &str, want: &str) {
    b.wait_for(&format!("{css} to read {want:?}"), |b| {
        Ok((b.text(css)? == want).then_some(()))
    });
}

#[test]
fn the_page_lists_filters_retries_and_drops_tasks_in_a_real_browser() {
    let dir = TempDir::new("browser");
    // The browser first: without Chromium the test fails at once, saying how to install it.
    let b = Browser::start(&dir.0);
    let redis = RedisServer::start(&dir.0);
    let mut con = redis.conn();
    let t = submit(&mut con);
    let [d1, d2] = &t.dead;
    let [p1, p2, p3, p4] = &t.pending;

    // A user of its own, given with the URL (the page acts as that user); RESP3 replies.
    config_set(&mut con, "min-replicas-to-write", "1");
    let _ = support::query(
        &mut con,
        &["ACL", "SETUSER", "ops", "on", ">s3cret", "~*", "+@all"],
    );
    let url = format!(
        "redis://ops:s3cret@127.0.0.1:{}/?protocol=resp3",
        redis.port
    );
    let op = Operator::start(&dir.0, &url);
    let shown = format!(
        "(Redis redis://ops@127.0.0.1:{}/?protocol=resp3)",
        redis.port
    );
    assert!(
        op.banner.ends_with(&shown) && !op.banner.contains("s3cret"),
        "first line {:?}",
        op.banner
    );

    // Paging: two tasks a page (`?count=2`), "Next page" until the cursor comes back to 0.
    b.goto(&format!("{}?count=2#pending", op.url()));
    let mut seen: Vec<String> = Vec::new();
    for page in 1.. {
        assert!(page <= 4, "more pages than tasks: {seen:?}");
        let info = format!("Page {page}");
        let got = b.wait_for(&format!("page {page}"), |b| {
            let text = b.text("#page-info")?;
            text.starts_with(&info).then(|| rows(b)).transpose()
        });
        assert!(got.len() <= 2, "page {page}: {got:?}");
        seen.extend(got);
        if b.find("#next-page:enabled").is_err() {
            break;
        }
        b.click("#next-page").unwrap();
    }
    let all: Vec<&String> = seen.iter().collect();
    assert_eq!(
        sorted(&all),
        sorted(&[p1, p2, p3, p4]),
        "every task once over the pages"
    );
    assert_eq!(seen.len(), 4, "every task once over the pages: {seen:?}");

    b.goto(&op.url());

    // Pending tab: the four pending tasks, the counts in the tab titles.
    wait_rows(
        &b,
        "the pending tab to list the pending tasks",
        &[p1, p2, p3, p4],
    );
    wait_text(&b, "#tab-pending", "Pending (4)");
    wait_text(&b, "#tab-dead", "Dead (2)");
    assert_eq!(text_content(&b, "col-when"), "Next attempt");

    // A click on a row shows its commands (quoted where needed), user and database.
    let detail = format!("tr.detail[data-detail-for='{p2}']");
    assert_eq!(b.text(&detail).unwrap(), "", "details start hidden");
    b.click(&format!("tr.task[data-task-id='{p2}'] td.id"))
        .unwrap();
    let shown = b.wait_for("the row's details", |b| {
        let text = b.text(&detail)?;
        Ok((!text.is_empty()).then_some(text))
    });
    for want in [
        "SET op:p:2 v",
        "HSET op:h greeting \"hello world\"",
        "default",
    ] {
        assert!(shown.contains(want), "details lack {want:?}: {shown:?}");
    }
    b.screenshot(&target_dir().join("operator/pending.png"));

    // The filter: text of the last error (MATCH *<text>*), here only the task deferred behind
    // another; then cleared.
    b.type_into("#filter", "waiting behind\u{E007}").unwrap();
    wait_rows(&b, "the filter to select the waiting task", &[p4]);
    assert!(
        b.text("#retry-all").unwrap().contains("matching"),
        "bulk buttons follow the filter"
    );
    b.clear("#filter").unwrap();
    b.type_into("#filter", "\u{E007}").unwrap();
    wait_rows(&b, "the unfiltered list again", &[p1, p2, p3, p4]);

    // Dead tab.
    b.click("#tab-dead").unwrap();
    wait_rows(&b, "the dead tab to list the dead tasks", &[d1, d2]);
    assert_eq!(text_content(&b, "col-when"), "Died at");
    b.screenshot(&target_dir().join("operator/dead.png"));

    // Retry a dead task: confirm, result line, it leaves the dead list and is pending again
    // (behind the pending task on op:dead:1, so it stays pending while the fault lasts).
    b.click(&format!("button.retry[data-task-id='{d1}']"))
        .unwrap();
    b.answer_dialog(d1, true);
    wait_text(&b, "#status", &format!("Retried task {d1}"));
    wait_rows(&b, "the retried task to leave the dead tab", &[d2]);
    assert_eq!(state(&mut con, d1), "pending");
    assert_eq!(task_ids(&mut con, "DEAD"), std::slice::from_ref(d2));
    assert!(task_ids(&mut con, "PENDING").contains(d1));
    wait_text(&b, "#tab-dead", "Dead (1)");
    wait_text(&b, "#tab-pending", "Pending (5)");

    // Back to pending: a drop that is not confirmed changes nothing.
    b.click("#tab-pending").unwrap();
    wait_rows(
        &b,
        "the retried task in the pending tab",
        &[p1, p2, p3, p4, d1],
    );
    b.click(&format!("button.drop[data-task-id='{p3}']"))
        .unwrap();
    b.answer_dialog(p3, false);
    assert_eq!(state(&mut con, p3), "pending");

    // Drop a pending task.
    b.click(&format!("button.drop[data-task-id='{p2}']"))
        .unwrap();
    b.answer_dialog(p2, true);
    wait_text(&b, "#status", &format!("Dropped task {p2}"));
    wait_rows(&b, "the dropped task to leave the list", &[p1, p3, p4, d1]);
    assert_eq!(state(&mut con, p2), "unknown");
    assert!(!task_ids(&mut con, "PENDING").contains(p2));
    wait_text(&b, "#tab-pending", "Pending (4)");
    assert_eq!(state(&mut con, p3), "pending");

    // "Drop all" acts on the current tab and filter only: TXU.DROP PENDING MATCH *<text>*.
    b.type_into("#filter", "waiting behind\u{E007}").unwrap();
    wait_rows(&b, "the filter to select the waiting task again", &[p4]);
    b.click("#drop-all").unwrap();
    b.answer_dialog("waiting behind", true);
    wait_text(&b, "#status", "Dropped 1 task");
    wait_rows(&b, "no task left matching the filter", &[]);
    assert_eq!(state(&mut con, p4), "unknown");
    let mut left = task_ids(&mut con, "PENDING");
    left.sort();
    assert_eq!(left, sorted(&[p1, p3, d1]));
    assert_eq!(task_ids(&mut con, "DEAD"), std::slice::from_ref(d2));
}

/// The API as a user who may list tasks but not change them nor read INFO: the listing works,
/// the counts are left out, and every action gets the server's NOPERM as the page's error.
#[test]
fn the_api_acts_as_the_urls_user() {
    let dir = TempDir::new("acl");
    let redis = RedisServer::start(&dir.0);
    let mut con = redis.conn();
    let _ = support::query(
        &mut con,
        &[
            "ACL",
            "SETUSER",
            "viewer",
            "on",
            ">pw",
            "~*",
            "-@all",
            "+txu.tasks",
            "+txu.status",
        ],
    );
    let op = Operator::start(
        &dir.0,
        &format!("redis://viewer:pw@127.0.0.1:{}", redis.port),
    );
    assert!(
        op.banner
            .ends_with(&format!("(Redis redis://viewer@127.0.0.1:{})", redis.port)),
        "first line {:?}",
        op.banner
    );

    let r = http::get(op.addr, "/api/tasks?state=pending").unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!({ "cursor": "0", "tasks": [] }));

    let r = http::get(op.addr, "/api/counts").unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!((&v["pending"], &v["dead"]), (&json!(null), &json!(null)));
    assert!(v["error"].as_str().unwrap().starts_with("NOPERM"), "{v}");

    for (path, body) in [
        ("/api/retry", json!({ "id": "1-1" })),
        ("/api/drop", json!({ "id": "1-1" })),
        ("/api/retry-all", json!({ "state": "dead", "filter": "x" })),
        ("/api/drop-all", json!({ "state": "pending" })),
    ] {
        let r = http::post_json(op.addr, path, &body).unwrap();
        assert_eq!(r.status, 502, "{path}: {}", r.text());
        let e = r.json()["error"].as_str().unwrap_or_default().to_string();
        assert!(e.starts_with("NOPERM"), "{path}: {e}");
    }

    // What the API cannot take is a 400 with the reason, and no command is sent.
    for (path, query) in [
        ("/api/tasks", "?state=alive"),
        ("/api/tasks", "?state=dead&cursor=x"),
        ("/api/tasks", "?state=dead&count=0"),
        ("/api/tasks", "?state=dead&count=1001"),
    ] {
        let r = http::get(op.addr, &format!("{path}{query}")).unwrap();
        assert_eq!(r.status, 400, "{path}{query}: {}", r.text());
        assert!(r.json()["error"].is_string(), "{path}{query}");
    }
    let r = http::request(
        op.addr,
        "POST",
        "/api/drop",
        Some(("text/plain", b"{\"id\":\"1-1\"}")),
    )
    .unwrap();
    assert_eq!(r.status, 400, "a form-like POST: {}", r.text());
    assert_eq!(
        r.header("content-type"),
        Some("application/json"),
        "errors are JSON"
    );
    let r = http::get(op.addr, "/").unwrap();
    assert!(
        r.text().contains("redis://viewer@127.0.0.1"),
        "the page names its Redis"
    );
}
