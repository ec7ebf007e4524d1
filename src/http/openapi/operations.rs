//! [`operations`], the table of every operation of the HTTP interface.

use serde_json::json;

use super::builder::{
    delete, get, patch, post, Access, Operation, ADMIN, AGENT_OR_SUPERVISOR, ANY, QA_OR_SUPERVISOR,
    SUPERVISOR,
};
use super::schemas::*;

fn call_id_doc(op: Operation) -> Operation {
    op.path_doc("id", "the call's id (`<node>-<date>-<seq>`)")
}

fn ticket_id_doc(op: Operation) -> Operation {
    op.path_doc("id", "the ticket's id (`T-YYYYMMDD-NNNN`)")
}

/// Every operation of the HTTP interface.
pub fn operations() -> Vec<Operation> {
    use crate::http::login::{LoginBody, LoginForm, LogoutForm};
    use crate::http::security::LockoutView;
    use crate::http::tickets::{CallbackBody, LinkBody, Note, SurveyBody};
    use crate::http::users::{NewTokenBody, NewUserBody, UserChangeBody};
    use crate::qa::forms::{Annotation, AnnotationInput, Score, ScoreInput};
    use crate::tickets::ticket::{NewTicket, Ticket, TicketUpdate};
    use Access::{Api, Page, Public};

    let ticket_statuses = ["open", "dispatched", "replied", "closed", "reopened"];
    let ticket_kinds = ["consultation", "query", "problem", "complaint", "order"];
    let event_types = crate::events::EVENT_TYPES.join(", ");
    let shift_tables = crate::reports::shift::TABLES;
    let calls_page_query = |op: Operation| {
        op.query("from", date(), "first local day")
            .query("to", date(), "last local day")
            .query("agent", text(), "agent id")
            .query("queue", text(), "queue name")
            .query("ticket", text(), "linked ticket id")
            .query("caller", text(), "caller number")
            .query(
                "min_rings",
                json!({ "type": "integer", "minimum": 1 }),
                "at least this many rings",
            )
            .query(
                "max_survey",
                json!({ "type": "integer", "minimum": 1, "maximum": 5 }),
                "survey score at most",
            )
            .query("violation", boolean(), "answered after the target ring")
            .query("qa", one_of(&["scored", "unscored"]), "QA scored or not")
    };
    let events_query = |op: Operation| {
        op.query("since", text(), "resume after this event id (`NODE-SEQ`)")
            .query("types", text(), "comma-separated event types")
            .header(
                "Last-Event-ID",
                "resume after this event id (wins over since)",
            )
    };

    vec![
        // System.
        get(
            "/healthz",
            "system",
            "Health: 200 once SIP, RTP and HTTP listen",
        )
        .access(Public)
        .json(
            200,
            "the daemon takes calls (\"degraded\": its records queue for the database)",
            health,
        )
        .json(503, "starting or draining", health),
        get("/metrics", "system", "Prometheus metrics")
            .access(Public)
            .content(
                200,
                "Prometheus text exposition format 0.0.4",
                "text/plain; version=0.0.4; charset=utf-8",
            ),
        get("/api/openapi.json", "system", "This OpenAPI document")
            .access(Public)
            .json(200, "the OpenAPI 3.1 document", any_object),
        // Signing in.
        get("/", "sign-in", "Who is signed in, with a sign-out button")
            .access(Page(ANY))
            .html("the home page"),
        get("/login", "sign-in", "The sign-in form")
            .access(Public)
            .query(
                "next",
                text(),
                "where to go after signing in (a path on this site)",
            )
            .html("the form; sets the form's CSRF cookie"),
        post("/login", "sign-in", "Sign in with the form")
            .access(Public)
            .about("Double-submit CSRF: the form's csrf field equals the cookie of GET /login.")
            .form_body(of::<LoginForm>)
            .reply(
                303,
                "signed in: to next (or /), with the session cookie threering_session",
            )
            .page_error(400, "the form could not be read")
            .page_error(401, "wrong name or password")
            .page_error(403, "the form expired (CSRF cookie and field differ)")
            .page_error(429, "too many failed logins (Retry-After)"),
        post("/logout", "sign-in", "Sign out")
            .access(Page(ANY))
            .about("Ends the session; needs its CSRF token (form field csrf or X-CSRF-Token).")
            .form_body(of::<LogoutForm>)
            .reply(303, "signed out (or not signed in): to /login")
            .error(403, "the CSRF token is missing or wrong"),
        post("/api/login", "sign-in", "Sign in for scripts")
            .access(Public)
            .about("Content-Type: application/json. Sets the session cookie threering_session.")
            .json_body(of::<LoginBody>)
            .json(200, "signed in", login_reply)
            .error(400, "not JSON, or not {name, password}")
            .error(401, "wrong name or password")
            .error(429, "too many failed logins (Retry-After)"),
        // Calls.
        get("/api/calls", "calls", "Call records, newest first")
            .about("An agent sees only the calls it answered.")
            .query("from", time(), "started at or after (RFC 3339 or epoch ms)")
            .query("to", time(), "started before (RFC 3339 or epoch ms)")
            .query("agent", text(), "answered by this agent")
            .query("queue", text(), "of this queue")
            .query("ticket", text(), "linked to this ticket")
            .query(
                "violation",
                boolean(),
                "true: answered after the target ring",
            )
            .query("limit", limit(), "at most this many")
            .json(200, "the calls", call_list)
            .error(400, "a bad or unknown query parameter")
            .error(403, "an agent asked for another agent's calls"),
        call_id_doc(get("/api/calls/{id}", "calls", "One call record"))
            .json(200, "the call", of::<crate::http::calls::CallView>)
            .error(403, "not one of the agent's calls")
            .error(404, "no such call"),
        call_id_doc(get(
            "/api/calls/{id}/recording",
            "calls",
            "The call's recording (WAV)",
        ))
        .about("Stereo 8 kHz WAV, caller left, agent right. Every playback is audit-logged.")
        .header("Range", "one byte range (bytes=a-b, a-, -n)")
        .content(200, "the whole file", "audio/wav")
        .content(206, "the range asked for", "audio/wav")
        .error(403, "not one of the agent's calls")
        .error(404, "no such call or recording")
        .reply(416, "the range lies outside the file"),
        call_id_doc(post(
            "/api/calls/{id}/recording/pause",
            "calls",
            "Pause a call's recording",
        ))
        .about("The recording is silence from now on (card numbers and the like).")
        .json(200, "paused", paused)
        .error(404, "no such call in progress")
        .error(409, "the call is not recorded")
        .error(503, "call control is not running"),
        call_id_doc(post(
            "/api/calls/{id}/recording/resume",
            "calls",
            "Resume a call's recording",
        ))
        .json(200, "recording again", paused)
        .error(404, "no such call in progress")
        .error(409, "the call is not recorded")
        .error(503, "call control is not running"),
        call_id_doc(post(
            "/api/calls/{id}/survey",
            "calls",
            "Hand the caller to the survey",
        ))
        .about("The agent's leg is ended; the caller hears the survey prompt.")
        .json(200, "the survey started", survey_started)
        .error(404, "no such connected call")
        .error(409, "the survey is not available for this call")
        .error(503, "call control is not running"),
        // QA.
        get("/api/qa/forms", "qa", "The QA scoring forms").json(200, "the forms", qa_forms),
        call_id_doc(get(
            "/api/calls/{id}/qa",
            "qa",
            "A call's flags, scores and annotations",
        ))
        .json(200, "the call's QA", qa_overview)
        .error(403, "not one of the agent's calls")
        .error(404, "no such call"),
        call_id_doc(get(
            "/api/calls/{id}/scores",
            "qa",
            "A call's score versions, oldest first",
        ))
        .json(200, "the scores", scores)
        .error(403, "not one of the agent's calls")
        .error(404, "no such call"),
        call_id_doc(post(
            "/api/calls/{id}/scores",
            "qa",
            "Score a call (a new version)",
        ))
        .access(Api(QA_OR_SUPERVISOR))
        .json_body(of::<ScoreInput>)
        .json(201, "the saved score", of::<Score>)
        .error(400, "unknown form, or items missing or unknown")
        .error(404, "no such call")
        .error(
            409,
            "the call is scored already: a correction needs a reason",
        ),
        call_id_doc(post(
            "/api/calls/{id}/annotations",
            "qa",
            "Annotate a moment of a call",
        ))
        .access(Api(QA_OR_SUPERVISOR))
        .json_body(of::<AnnotationInput>)
        .json(201, "the annotation", of::<Annotation>)
        .error(
            400,
            "at_ms outside the recording, or neither tag nor comment",
        )
        .error(404, "no such call"),
        call_id_doc(get(
            "/api/calls/{id}/waveform.svg",
            "qa",
            "The recording's two channels drawn",
        ))
        .content(200, "the picture", "image/svg+xml; charset=utf-8")
        .error(403, "not one of the agent's calls")
        .error(404, "no such call or recording"),
        call_id_doc(get(
            "/api/calls/{id}/timeline.svg",
            "qa",
            "The call's ring timeline drawn",
        ))
        .content(200, "the picture", "image/svg+xml; charset=utf-8")
        .error(403, "not one of the agent's calls")
        .error(404, "no such call"),
        // Tickets.
        get("/api/tickets", "tickets", "Tickets, earliest due first")
            .query("status", one_of(&ticket_statuses), "in this status")
            .query("kind", one_of(&ticket_kinds), "of this kind")
            .query("area", text(), "business area")
            .query("agent", text(), "assigned agent")
            .query("due_before", time(), "due before (RFC 3339 or epoch ms)")
            .query(
                "overdue",
                boolean(),
                "true: waiting for a reply past the due time",
            )
            .query("from", time(), "accepted at or after")
            .query("to", time(), "accepted before")
            .query("limit", limit(), "at most this many")
            .json(200, "the tickets", ticket_list)
            .error(400, "a bad or unknown query parameter"),
        post("/api/tickets", "tickets", "Open a ticket")
            .about("Only kind is required; what is missing is listed when the ticket is archived.")
            .json_body(of::<NewTicket>)
            .json(201, "the ticket", of::<Ticket>)
            .error(400, "every problem of the body"),
        ticket_id_doc(get(
            "/api/tickets/{id}",
            "tickets",
            "One ticket with its calls and history",
        ))
        .json(200, "the ticket", of::<Ticket>)
        .error(404, "no such ticket"),
        ticket_id_doc(patch(
            "/api/tickets/{id}",
            "tickets",
            "Change a ticket's fields or status",
        ))
        .about("For the form fields, the promise and the no-survey reason, null clears.")
        .json_body(of::<TicketUpdate>)
        .json(200, "the ticket", of::<Ticket>)
        .error(400, "every problem of the body")
        .error(404, "no such ticket")
        .error(
            409,
            "a status move the rules forbid, or the ticket is archived",
        ),
        ticket_id_doc(get(
            "/api/tickets/{id}/history",
            "tickets",
            "A ticket's history",
        ))
        .json(200, "the history", ticket_history)
        .error(404, "no such ticket"),
        ticket_id_doc(post(
            "/api/tickets/{id}/notes",
            "tickets",
            "Add a handling note",
        ))
        .json_body(of::<Note>)
        .json(201, "the ticket", of::<Ticket>)
        .error(400, "an empty note")
        .error(404, "no such ticket")
        .error(409, "the ticket is archived"),
        ticket_id_doc(get(
            "/api/tickets/{id}/calls",
            "tickets",
            "A ticket's linked calls",
        ))
        .json(200, "the links", ticket_calls)
        .error(404, "no such ticket"),
        ticket_id_doc(post(
            "/api/tickets/{id}/calls",
            "tickets",
            "Link a stored call",
        ))
        .about("role: inbound, work-contact or reply.")
        .json_body(of::<LinkBody>)
        .json(201, "the ticket", of::<Ticket>)
        .error(400, "a bad role")
        .error(404, "no such ticket or call")
        .error(409, "the ticket is archived"),
        ticket_id_doc(post(
            "/api/tickets/{id}/survey",
            "tickets",
            "Record a survey result",
        ))
        .about("Either score (1-5) with an optional cause, or no_survey_reason.")
        .json_body(of::<SurveyBody>)
        .json(200, "the ticket", of::<Ticket>)
        .error(400, "neither or both, or a bad score or cause")
        .error(404, "no such ticket")
        .error(409, "the ticket is archived"),
        ticket_id_doc(post(
            "/api/tickets/{id}/callback",
            "tickets",
            "Call the customer back",
        ))
        .about("Rings the agent first, then the number through a trunk.")
        .json_body(of::<CallbackBody>)
        .json(202, "the callback started", callback_started)
        .error(400, "a bad number, unknown agent or trunk")
        .error(403, "the number is not allowed by [callbacks]")
        .error(404, "no such ticket")
        .error(429, "the agent's callbacks for today are used up")
        .error(
            409,
            "no trunk, the agent is busy or unreachable, or the ticket is archived",
        )
        .error(503, "call control is not running or is overloaded"),
        ticket_id_doc(post(
            "/api/tickets/{id}/archive",
            "tickets",
            "Archive a complete ticket",
        ))
        .access(Api(QA_OR_SUPERVISOR))
        .json(201, "the bundle", of::<crate::tickets::archiving::Archived>)
        .error(404, "no such ticket")
        .error(
            409,
            "archived already, being archived, or changed meanwhile",
        )
        .error(422, "incomplete: missing lists every missing item")
        .error(500, "writing the bundle failed"),
        // Reports.
        get(
            "/api/reports/summary",
            "reports",
            "Figures per queue, agent, hour or day",
        )
        .access(Api(QA_OR_SUPERVISOR))
        .query(
            "from",
            time(),
            "calls started at or after (default 24 h before to)",
        )
        .query("to", time(), "calls started before (default now)")
        .query(
            "group",
            one_of(&["none", "queue", "agent", "hour", "day"]),
            "grouping",
        )
        .query(
            "format",
            one_of(&["json", "csv"]),
            "json (default) or a CSV download",
        )
        .json(200, "the summary (rows, totals, rules)", any_object)
        .or_content("text/csv; charset=utf-8; header=present", None)
        .error(400, "a bad or unknown query parameter"),
        get(
            "/api/reports/charts/rings.svg",
            "reports",
            "Histogram of rings to answer",
        )
        .access(Api(QA_OR_SUPERVISOR))
        .query("from", time(), "calls started at or after")
        .query("to", time(), "calls started before")
        .query("queue", text(), "only this queue")
        .query("agent", text(), "only this agent")
        .content(200, "the chart", "image/svg+xml; charset=utf-8")
        .error(400, "a bad or unknown query parameter"),
        get(
            "/api/reports/charts/compliance.svg",
            "reports",
            "Answered within the target",
        )
        .access(Api(QA_OR_SUPERVISOR))
        .query("from", time(), "calls started at or after")
        .query("to", time(), "calls started before")
        .query(
            "by",
            one_of(&["hour", "day"]),
            "per local hour of day or per day",
        )
        .query("queue", text(), "only this queue")
        .content(200, "the chart", "image/svg+xml; charset=utf-8")
        .error(400, "a bad or unknown query parameter"),
        get("/api/reports/shift", "reports", "The shift handover report")
            .access(Api(QA_OR_SUPERVISOR))
            .query("from", time(), "shift start")
            .query("to", time(), "shift end")
            .query(
                "format",
                one_of(&["html", "json", "csv"]),
                "html (default), json or csv",
            )
            .query(
                "table",
                one_of(&shift_tables),
                "with format=csv: which table",
            )
            .page_error(200, "the report")
            .or_content("application/json", Some(any_object))
            .or_content("text/csv; charset=utf-8; header=present", None)
            .error(400, "a bad or unknown query parameter"),
        // Events.
        events_query(get(
            "/api/events",
            "events",
            "The CTI event stream (Server-Sent Events)",
        ))
        .about(format!(
            "Each event: id (the event id), event (its type), data {{id, type, at, data}}. \
                 Event types: {event_types}."
        ))
        .content(200, "the stream (does not end)", "text/event-stream")
        .error(400, "a bad since or types"),
        events_query(get(
            "/api/events/ws",
            "events",
            "The CTI events over a WebSocket",
        ))
        .about(format!(
            "One JSON text message per event. Event types: {event_types}."
        ))
        .reply(101, "switching to the WebSocket")
        .error(400, "a bad since or types, or not a WebSocket upgrade"),
        get(
            "/api/webhooks/dead-letters",
            "events",
            "Webhook deliveries that failed",
        )
        .access(Api(SUPERVISOR))
        .query("webhook", text(), "of this webhook")
        .query(
            "limit",
            json!({ "type": "integer", "minimum": 0 }),
            "at most (default 100)",
        )
        .json(200, "the dead letters, newest first", dead_letters)
        .error(400, "a bad limit"),
        post(
            "/api/webhooks/dead-letters/{id}/retry",
            "events",
            "Send a dead letter again",
        )
        .access(Api(SUPERVISOR))
        .path_doc("id", "the dead letter's number")
        .json(202, "queued again (same event id)", retry_queued)
        .error(404, "no such dead letter")
        .error(409, "its webhook is no longer configured")
        .error(503, "the webhook's queue is full"),
        // Agents.
        get("/api/agents", "agents", "The agents' states")
            .about("The agent role sees only itself.")
            .json(200, "the agents", agent_list)
            .error(503, "call control is not running"),
        get("/api/live", "agents", "What the wallboard shows")
            .access(Api(QA_OR_SUPERVISOR))
            .about(
                "Calls in progress and every agent's state now. With several nodes on one \
                 PostgreSQL database: every live node's calls, and each agent as the node \
                 that has it most engaged shows it (README \"Scaling out\").",
            )
            .json(200, "the picture", live_snapshot)
            .error(503, "call control is not running"),
        post(
            "/api/agents/{id}/queues/{queue}/login",
            "agents",
            "Log an agent into a queue",
        )
        .access(Api(AGENT_OR_SUPERVISOR))
        .about("An agent may change only itself.")
        .json(200, "the agent after the change", agent)
        .error(
            404,
            "unknown agent or queue, or a queue the agent is not in",
        )
        .error(409, "refused by call control")
        .error(503, "call control is not running"),
        post(
            "/api/agents/{id}/queues/{queue}/logout",
            "agents",
            "Log an agent out of a queue",
        )
        .access(Api(AGENT_OR_SUPERVISOR))
        .about("An agent may change only itself.")
        .json(200, "the agent after the change", agent)
        .error(
            404,
            "unknown agent or queue, or a queue the agent is not in",
        )
        .error(409, "refused by call control")
        .error(503, "call control is not running"),
        post(
            "/api/agents/{id}/pause",
            "agents",
            "Pause an agent, with a reason",
        )
        .access(Api(AGENT_OR_SUPERVISOR))
        .about("An agent may change only itself.")
        .json_body(pause_body)
        .json(200, "the agent after the change", agent)
        .error(400, "no reason, or one longer than 200 characters")
        .error(404, "unknown agent")
        .error(409, "refused by call control")
        .error(503, "call control is not running"),
        post("/api/agents/{id}/unpause", "agents", "Unpause an agent")
            .access(Api(AGENT_OR_SUPERVISOR))
            .about("An agent may change only itself.")
            .json(200, "the agent after the change", agent)
            .error(404, "unknown agent")
            .error(409, "refused by call control")
            .error(503, "call control is not running"),
        post(
            "/api/agents/{id}/wrap-up/end",
            "agents",
            "End an agent's wrap-up",
        )
        .access(Api(AGENT_OR_SUPERVISOR))
        .about("An agent may change only itself.")
        .json(200, "the agent after the change", agent)
        .error(404, "unknown agent")
        .error(409, "the agent is not in wrap-up")
        .error(503, "call control is not running"),
        // Users.
        get("/api/me", "users", "Who am I").json(
            200,
            "the caller; a session also gets its CSRF token",
            me,
        ),
        get("/api/audit", "users", "The audit log, newest first")
            .access(Api(ADMIN))
            .query("actor", text(), "who")
            .query("action", text(), "an action, or a family like ticket.*")
            .query("target", text(), "what")
            .query("from", time(), "at or after")
            .query("to", time(), "before")
            .query("limit", limit(), "at most this many")
            .json(200, "the entries", audit_entries)
            .error(400, "a bad or unknown query parameter"),
        get("/api/users", "users", "The users")
            .access(Api(ADMIN))
            .json(200, "the users", user_list),
        post("/api/users", "users", "Add a user")
            .access(Api(ADMIN))
            .json_body(of::<NewUserBody>)
            .json(201, "the user", of::<crate::users::User>)
            .error(400, "every problem of the body")
            .error(409, "the name is taken"),
        patch(
            "/api/users/{name}",
            "users",
            "Change a user's role, agent id, password or state",
        )
        .access(Api(ADMIN))
        .path_doc("name", "the user's name")
        .json_body(of::<UserChangeBody>)
        .json(200, "the user", of::<crate::users::User>)
        .error(400, "every problem of the body")
        .error(404, "no such user"),
        get("/api/users/{name}/tokens", "users", "A user's API tokens")
            .access(Api(ADMIN))
            .about("Also the user themself.")
            .path_doc("name", "the user's name")
            .json(200, "the tokens (never the secrets)", token_list)
            .error(404, "no such user"),
        post("/api/users/{name}/tokens", "users", "Make an API token")
            .access(Api(ADMIN))
            .about("Also the user themself. The token is shown only in this answer.")
            .path_doc("name", "the user's name")
            .optional_json_body(of::<NewTokenBody>)
            .json(201, "the new token", new_token)
            .error(400, "a bad body")
            .error(404, "no such user"),
        delete(
            "/api/users/{name}/tokens/{id}",
            "users",
            "Revoke an API token",
        )
        .access(Api(ADMIN))
        .about("Also the user themself.")
        .path_doc("name", "the user's name")
        .path_doc("id", "the token's number")
        .json(200, "the revoked token", of::<crate::users::ApiToken>)
        .error(404, "no such user or token"),
        // Security.
        get(
            "/api/security/lockouts",
            "security",
            "SIP digest lockouts in force",
        )
        .access(Api(ADMIN))
        .about(
            "Sources and user names locked out after [sip] auth_max_failures wrong \
                 passwords within auth_failure_window_s; sources first.",
        )
        .json(200, "the lockouts", lockouts_list),
        delete(
            "/api/security/lockouts/{kind}/{key}",
            "security",
            "Lift a SIP digest lockout",
        )
        .access(Api(ADMIN))
        .about("Audit-logged as sip.lockout.lift.")
        .path_doc("kind", "source or user")
        .path_doc("key", "the IP address or the user name")
        .json(200, "the lockout lifted", of::<LockoutView>)
        .error(404, "no such lockout in force"),
        // Pages.
        calls_page_query(get("/ui/calls", "pages", "Call search"))
            .access(Page(ANY))
            .html("the search form and the matching calls"),
        call_id_doc(get("/ui/calls/{id}", "pages", "The call page"))
            .about("The recording, waveform, ring timeline, flags, scores and annotations.")
            .access(Page(ANY))
            .html("the call page")
            .page_error(403, "not one of the agent's calls")
            .page_error(404, "no such call"),
        call_id_doc(post(
            "/ui/calls/{id}/score",
            "pages",
            "Score a call (page form)",
        ))
        .access(Page(QA_OR_SUPERVISOR))
        .form_body(score_form)
        .reply(
            303,
            "saved: back to the call page; or not signed in: to /login",
        )
        .page_error(400, "a bad form")
        .content(
            415,
            "not a form (Content-Type)",
            "text/plain; charset=utf-8",
        )
        .page_error(403, "CSRF token missing or wrong, or the role may not")
        .page_error(404, "no such call")
        .page_error(409, "a correction needs a reason"),
        call_id_doc(post(
            "/ui/calls/{id}/annotate",
            "pages",
            "Annotate a call (page form)",
        ))
        .access(Page(QA_OR_SUPERVISOR))
        .form_body(annotation_form)
        .reply(
            303,
            "saved: back to the call page; or not signed in: to /login",
        )
        .page_error(400, "a bad form")
        .content(
            415,
            "not a form (Content-Type)",
            "text/plain; charset=utf-8",
        )
        .page_error(403, "CSRF token missing or wrong, or the role may not")
        .page_error(404, "no such call"),
        get("/ui/dashboard", "pages", "The supervisor dashboard")
            .access(Page(QA_OR_SUPERVISOR))
            .query("from", date(), "first local day (default today)")
            .query("to", date(), "last local day (default today)")
            .html("the dashboard")
            .page_error(403, "the role may not"),
        get("/ui/shift", "pages", "The shift handover report page")
            .access(Page(QA_OR_SUPERVISOR))
            .query(
                "from",
                time(),
                "shift start (RFC 3339, epoch ms or local time)",
            )
            .query("to", time(), "shift end")
            .html("the report")
            .page_error(400, "a bad range")
            .page_error(403, "the role may not"),
        get("/ui/wallboard", "pages", "The live wallboard")
            .access(Page(QA_OR_SUPERVISOR))
            .html("the wallboard (it reads /ui/wallboard/stream)")
            .page_error(403, "the role may not"),
        get(
            "/ui/wallboard/stream",
            "pages",
            "The wallboard's data (Server-Sent Events)",
        )
        .access(Page(QA_OR_SUPERVISOR))
        .about("A snapshot event every second: calls waiting, ringing, talking; the agents.")
        .content(200, "the stream (does not end)", "text/event-stream")
        .page_error(403, "the role may not"),
    ]
}
