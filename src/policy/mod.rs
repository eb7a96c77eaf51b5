//! The policy engine: which app a request belongs to is decided by the proxy; what
//! the request needs is decided here, by a pure function of the request's facts.

pub mod decide;
pub mod path;
pub mod rule;
pub mod table;

pub use decide::{AppPolicy, Authentication, DecidedBy, Decision, Outcome, RequestFacts, Requirement};
pub use path::{normalise, NormalisedPath, PathError};
pub use rule::{MfaMode, PathMatch, Rule, RulePolicy, Subjects};
pub use table::{RouteTable, RuleConflict};
