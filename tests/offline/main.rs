//! The tests that need no Docker engine, in one binary: each test binary costs a link, and
//! these share the library build. Tests that need a Swarm live in their own files beside this
//! folder and start the engine they need.

#[path = "../common/counting.rs"]
mod counting;
#[path = "../common/crafted_model.rs"]
mod crafted_model;
#[path = "../common/exporter.rs"]
mod exporter;
#[path = "../common/prometheus.rs"]
mod prometheus_server;
#[path = "../common/rabbitmq.rs"]
mod rabbitmq_server;
#[path = "../common/redis.rs"]
mod redis_server;

mod cli_pipes;
mod cli_replay;
mod cli_validate;
mod deploy_files;
mod example_policies;
mod metrics_exposition_props;
mod metrics_prometheus;
mod metrics_queue;
mod metrics_scrape;
mod models_check;
mod models_eval;
mod models_golden;
mod policy_hostile;
mod policy_invalid;
mod policy_labels;
mod policy_roundtrip;
mod replay_models;
mod replay_parity;
mod replay_sim;
mod schema_files;
