//! Property: every valid policy survives label encode then decode unchanged.

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use swarmpilot::policy::labels::{self, decode, encode};
use swarmpilot::policy::*;

fn name() -> impl Strategy<Value = String> {
    "[a-z]([a-z0-9_-]{0,10}[a-z0-9])?"
}

fn duration_ms(range: std::ops::RangeInclusive<u64>) -> impl Strategy<Value = HumanDuration> {
    prop_oneof![
        // whole seconds, the common case, and arbitrary milliseconds
        ((range.start() / 1000).max(if *range.start() > 0 { 1 } else { 0 })..=range.end() / 1000)
            .prop_map(HumanDuration::from_secs),
        range.prop_map(|ms| HumanDuration(Duration::from_millis(ms))),
    ]
}

fn positive() -> impl Strategy<Value = f64> {
    prop_oneof![(1u32..10_000).prop_map(f64::from), 0.001f64..1e6]
}

fn url() -> impl Strategy<Value = String> {
    (
        "(http|https)",
        "[a-z]{1,8}",
        option::of(1u16..),
        "(/[a-z0-9]{0,6}){0,2}",
    )
        .prop_map(|(scheme, host, port, path)| match port {
            Some(port) => format!("{scheme}://{host}.example:{port}{path}"),
            None => format!("{scheme}://{host}.example{path}"),
        })
}

#[derive(Clone, Debug)]
enum Kind {
    Prometheus(PrometheusSource),
    Scrape(ScrapeSource),
    Docker(Resource),
}

fn source() -> impl Strategy<Value = Kind> {
    let prometheus = (
        prop_oneof![
            Just("up".to_owned()),
            Just(labels::RPS_QUERY.to_owned()),
            Just(r#"sum(x{stack="{{stack}}", service="{{service}}"})"#.to_owned()),
            "[a-z_]{1,12}",
        ],
        option::of(url()),
        option::of(-1e3f64..1e3),
    )
        .prop_map(|(query, server, treat_empty_as)| {
            Kind::Prometheus(PrometheusSource {
                query,
                server,
                treat_empty_as,
            })
        });
    let scrape = (
        1u16..,
        "/[a-z/]{0,10}",
        "[a-z_]{1,20}",
        btree_map("[a-z_]{1,8}", "[ -~]{0,10}", 0..3),
        prop_oneof![
            Just(Aggregate::Sum),
            Just(Aggregate::Avg),
            Just(Aggregate::Max)
        ],
        option::of(name()),
        option::of(0.01f64..0.99),
        prop_oneof![Just(1.0), 0.01f64..1.0],
    )
        .prop_map(
            |(port, path, metric, labels, aggregate, network, quantile, min_responding)| {
                Kind::Scrape(ScrapeSource {
                    port,
                    path,
                    metric,
                    labels,
                    aggregate,
                    network,
                    quantile,
                    min_responding,
                })
            },
        );
    let docker = prop_oneof![
        Just(Resource::Cpu),
        Just(Resource::Memory),
        Just(Resource::NetworkRx),
        Just(Resource::NetworkTx),
    ]
    .prop_map(Kind::Docker);
    prop_oneof![prometheus, scrape, docker]
}

fn metric(index: usize) -> impl Strategy<Value = MetricSpec> {
    (source(), 0..3u8, positive()).prop_map(move |(kind, target_kind, value)| {
        let utilization_ok = matches!(kind, Kind::Docker(Resource::Cpu | Resource::Memory));
        let target = match target_kind {
            0 if utilization_ok => Target::Utilization(value),
            1 => Target::Value(value),
            _ => Target::AverageValue(value),
        };
        let (prometheus, scrape, docker) = split(kind);
        MetricSpec {
            name: format!("m{index}"),
            prometheus,
            scrape,
            docker,
            redis: None,
            rabbitmq: None,
            target,
            activation: None,
        }
    })
}

fn split(
    kind: Kind,
) -> (
    Option<PrometheusSource>,
    Option<ScrapeSource>,
    Option<DockerSource>,
) {
    match kind {
        Kind::Prometheus(p) => (Some(p), None, None),
        Kind::Scrape(s) => (None, Some(s), None),
        Kind::Docker(resource) => (None, None, Some(DockerSource { resource })),
    }
}

fn rules() -> impl Strategy<Value = ScalingRules> {
    let rate = (
        prop_oneof![
            Just(RatePolicyKind::Replicas),
            Just(RatePolicyKind::Percent)
        ],
        1u32..1000,
        duration_ms(1000..=1_800_000),
    )
        .prop_map(|(kind, value, period)| RatePolicy {
            kind,
            value,
            period,
        });
    (
        option::of(duration_ms(0..=3_600_000)),
        option::of(prop_oneof![
            Just(SelectPolicy::Max),
            Just(SelectPolicy::Min),
            Just(SelectPolicy::Disabled)
        ]),
        option::of(vec(rate, 0..3)),
        option::of(0.0f64..0.99),
    )
        .prop_map(
            |(stabilization_window, select_policy, policies, tolerance)| {
                let disabled = select_policy == Some(SelectPolicy::Disabled);
                ScalingRules {
                    stabilization_window,
                    select_policy,
                    policies: policies.filter(|p| disabled || !p.is_empty()),
                    tolerance,
                }
            },
        )
}

fn policy() -> impl Strategy<Value = ScalingPolicy> {
    (1u32..10, 0u32..50, 1usize..4, 0usize..3).prop_flat_map(
        |(min, extra, n_metrics, n_observe)| {
            let max = min + extra;
            let metrics: Vec<_> = (0..n_metrics).map(metric).collect();
            let observe = vec(source(), n_observe..=n_observe).prop_map(|sources| {
                sources
                    .into_iter()
                    .enumerate()
                    .map(|(i, kind)| {
                        let (prometheus, scrape, docker) = split(kind);
                        ObservedMetric {
                            name: format!("o{i}"),
                            prometheus,
                            scrape,
                            docker,
                            redis: None,
                            rabbitmq: None,
                        }
                    })
                    .collect::<Vec<_>>()
            });
            let any_metric = (0..n_metrics).prop_map(|i| format!("m{i}"));
            let any_name = prop_oneof![
                (0..n_metrics).prop_map(|i| format!("m{i}")),
                (0..n_observe.max(1)).prop_map(move |i| if n_observe > 0 {
                    format!("o{i}")
                } else {
                    "m0".into()
                }),
            ];
            let forecast = option::of(
                (
                    "[a-z-]{1,16}",
                    any_metric,
                    duration_ms(1000..=600_000),
                    prop_oneof![Just(ForecastUse::ScaleUp), Just(ForecastUse::Both)],
                )
                    .prop_map(|(model, metric, horizon, use_for)| ForecastSpec {
                        model,
                        metric,
                        horizon,
                        use_for,
                    }),
            );
            let action = prop_oneof![
                Just(StateAction::Scale),
                Just(StateAction::Hold),
                Just(StateAction::NoScaleDown),
                (min..=max).prop_map(StateAction::Cap),
            ];
            let state = prop_oneof![
                Just(TrafficState::Normal),
                Just(TrafficState::FlashCrowd),
                Just(TrafficState::Flood),
                Just(TrafficState::Degraded),
                Just(TrafficState::Unknown),
            ];
            let anomaly = option::of(
                (
                    "[a-z-]{1,16}",
                    vec(option::of(any_name), 5..=5),
                    duration_ms(0..=600_000),
                    btree_map(state, action, 0..5),
                    vec(
                        url().prop_map(|url| Notify {
                            receiver: None,
                            url: Some(url),
                        }),
                        0..2,
                    ),
                )
                    .prop_map(|(model, roles, for_duration, on_state, notify)| {
                        AnomalySpec {
                            model,
                            inputs: AnomalyInputs {
                                requests: roles[0].clone(),
                                errors: roles[1].clone(),
                                latency: roles[2].clone(),
                                receive_bytes: roles[3].clone(),
                                transmit_bytes: roles[4].clone(),
                            },
                            for_duration,
                            on_state,
                            notify,
                        }
                    }),
            );
            let fallback = prop_oneof![
                Just(Fallback::Hold),
                (min..=max).prop_map(Fallback::CurrentIfHigher),
                (min..=max).prop_map(Fallback::Replicas),
            ];
            (
                (name(), option::of(name())),
                duration_ms(1000..=3_600_000),
                prop_oneof![Just(Mode::Enforce), Just(Mode::Recommend)],
                metrics,
                observe,
                forecast,
                anomaly,
                (option::of(rules()), option::of(rules())),
                fallback,
            )
                .prop_map(
                    move |(
                        (name, service),
                        interval,
                        mode,
                        metrics,
                        observe,
                        forecast,
                        anomaly,
                        (scale_up, scale_down),
                        fallback,
                    )| ScalingPolicy {
                        api_version: API_VERSION.into(),
                        kind: KIND.into(),
                        metadata: Metadata { name },
                        spec: PolicySpec {
                            service,
                            min_replicas: min,
                            idle_replicas: None,
                            cooldown_period: None,
                            max_replicas: max,
                            interval,
                            mode,
                            metrics,
                            observe,
                            forecast,
                            anomaly,
                            alerts: None,
                            behavior: Behavior {
                                scale_up,
                                scale_down,
                            },
                            fallback: fallback.into(),
                            schedules: Vec::new(),
                        },
                    },
                )
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn every_valid_policy_survives_the_label_round_trip(policy in policy()) {
        prop_assert_eq!(validate(&policy), Ok(()));
        let labels = BTreeMap::from([(labels::POLICY.to_owned(), encode(&policy))]);
        let decoded = decode(policy.service(), &labels);
        prop_assert_eq!(decoded, Ok(Some(policy.clone())));
        // The label text is also a valid policy file.
        prop_assert_eq!(parse(&encode(&policy)), Ok(policy));
    }
}
