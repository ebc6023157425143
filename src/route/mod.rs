//! Routing of alert notifications, with Alertmanager's semantics inside one daemon: routes
//! choose receivers, groups batch notifications, firing alerts repeat, and silences,
//! inhibition and maintenance windows mute notifications while alerts keep their state.

mod dispatcher;
mod inhibit;
mod maintenance;
mod matcher;
mod routes;
mod silence;

pub use dispatcher::{Dispatcher, MuteReason, RoutedEntry};
pub use inhibit::{InhibitRule, default_inhibit_rule};
pub use maintenance::MaintenanceWindow;
pub use matcher::{Labels, MatchOp, Matcher, all_match, labels_of};
pub use routes::{
    DEFAULT_GROUP_INTERVAL, DEFAULT_GROUP_WAIT, DEFAULT_GROUP_WAIT_P1, DEFAULT_REPEAT_INTERVAL,
    GroupSettings, RouteMatch, RouteSpec, RoutingConfig, default_group_by,
};
pub use silence::{Silence, SilenceBook, SilenceState};
