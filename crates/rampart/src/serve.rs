//! `rampart serve`: open the store, bind the listeners, serve until SIGINT or SIGTERM.

use crate::config::{AccessLog, Config, HttpTls};
use anyhow::Context;
use rampart_core::time_arg::format_duration;
use rampart_ssh::live::SessionDefaults;
use rampart_ssh::{Gateway, GatewaySettings};
use rampart_store::ssh_keys::parse_public_keys;
use rampart_store::{OpenReport, ServeLock, Store, StoreOptions, node_keys};
use rampart_web::{WebSettings, WebState};
use std::fs::OpenOptions;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, fmt};

pub async fn run(config: Config) -> anyhow::Result<()> {
    // One server per data directory, decided before anything in it is read or changed: a second
    // one would seal the first one's live sessions as interrupted. Held until this returns.
    let serve_lock = ServeLock::acquire(&config.data_dir)?;
    let options = StoreOptions {
        data_dir: config.data_dir.clone(),
        master_key: config.master_key.clone(),
        database: config.store_url.clone(),
    };
    let (store, report) = Store::open_for_serving(&options, &serve_lock).await?;
    let access_log = init_logging(&config, &store)?;
    // The bucket is checked before any socket is bound: WORM mode on a bucket that cannot
    // hold recordings for their retention stops here.
    let uploader = crate::recording_store::start(&config).await?;
    // The certificate is read (or generated) before any socket is bound: a bad one stops here.
    let tls = match &config.http.tls {
        HttpTls::Off => None,
        HttpTls::SelfSigned => Some(rampart_web::tls::CertSource::SelfSigned {
            keys_dir: store.data_dir().keys_dir(),
        }),
        HttpTls::Files { cert, key } => Some(rampart_web::tls::CertSource::Files {
            cert: cert.clone(),
            key: key.clone(),
        }),
    }
    .map(|source| rampart_web::tls::load(&source))
    .transpose()
    .context("http.tls")?;

    let http = TcpListener::bind(config.http_listen)
        .await
        .with_context(|| format!("cannot listen on http.listen {}", config.http_listen))?;
    let http_addr = http.local_addr()?;
    let ssh = TcpListener::bind(config.ssh_listen)
        .await
        .with_context(|| format!("cannot listen on ssh.listen {}", config.ssh_listen))?;
    let ssh_addr = ssh.local_addr()?;
    let metrics_listener = match config.ops.metrics_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on metrics.listen {addr}"))?,
        ),
        None => None,
    };
    // The database listeners (optional) speak TLS with the node's certificate: the web
    // listener's, or the node's self-signed one when the web listener runs without TLS.
    let node_certificate = || match &tls {
        Some(material) => Ok(material.config.clone()),
        None => rampart_web::tls::load(&rampart_web::tls::CertSource::SelfSigned {
            keys_dir: store.data_dir().keys_dir(),
        })
        .map(|material| material.config)
        .context("database listener TLS certificate"),
    };
    let postgres = database_listener("postgres", config.postgres.listen, &node_certificate).await?;
    let mysql = database_listener("mysql", config.mysql.listen, &node_certificate).await?;
    let redis = database_listener("redis", config.redis.listen, &node_certificate).await?;
    let kube = database_listener("kube", config.kube.listen, &node_certificate).await?;
    // The native VNC listener's VeNCrypt (X509Plain) uses the same certificate.
    let vnc = database_listener("vnc", config.vnc.listen, &node_certificate).await?;
    // So does the native RDP listener's TLS security.
    let rdp = database_listener("rdp", config.rdp.listen, &node_certificate).await?;
    let listening = |listener: &Option<(TcpListener, _)>| {
        listener
            .as_ref()
            .map(|(listener, _)| listener.local_addr())
            .transpose()
    };
    let postgres_addr = listening(&postgres)?;
    let mysql_addr = listening(&mysql)?;
    let redis_addr = listening(&redis)?;
    let kube_addr = listening(&kube)?;
    let vnc_addr = listening(&vnc)?;
    let rdp_addr = listening(&rdp)?;
    // The listener dial-out agents connect to (optional), with the node's SSH host key: the
    // enrolment token carries its fingerprint, so agents check it from their first connection.
    let agent_listener = match config.agent.listen {
        None => None,
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on agent.listen {addr}"))?,
        ),
    };
    let agent_addr = agent_listener
        .as_ref()
        .map(TcpListener::local_addr)
        .transpose()?;
    let shutdown = shutdown_signal()?;
    // Each sink's starting point is fixed before the listening line, so every event after it
    // is forwarded (a new sink starts at the head of the log).
    let mut sinks = Vec::new();
    for sink in crate::forwarder::sinks(&config.audit) {
        let status = store
            .sink_status(&sink.name())
            .await
            .with_context(|| format!("cannot read the progress of audit sink {}", sink.name()))?;
        sinks.push((sink, status));
    }

    let metrics = Arc::new(rampart_web::metrics::Metrics::new(
        tls.as_ref().map(|t| t.cert_path.clone()),
    ));
    if let Some(listener) = &metrics_listener {
        // Before the banner's last line, which scripts wait for.
        println!(
            "metrics: listening on http://{}/metrics (no authentication: keep it reachable only by your monitoring)",
            listener.local_addr()?
        );
    }
    if let Some(addr) = postgres_addr {
        println!(
            "postgres: listening on {addr} (try: psql \"host={} port={} user=USER@ASSET dbname=DB sslmode=require\" with a token from rampart db token)",
            addr.ip(),
            addr.port()
        );
    }
    if let Some(addr) = agent_addr {
        println!(
            "agents: listening on {addr} (enrol one: rampart agent token create --domain DOMAIN)"
        );
    }
    if let Some(addr) = mysql_addr {
        println!(
            "mysql: listening on {addr} (try: mariadb --ssl -h {} -P {} -u USER@ASSET -p with a token from rampart db token)",
            addr.ip(),
            addr.port()
        );
    }
    if let Some(addr) = redis_addr {
        println!(
            "redis: listening on {addr} (try: redis-cli --tls -h {} -p {} --user USER@ASSET --pass TOKEN, with a token from rampart db token)",
            addr.ip(),
            addr.port()
        );
    }
    if let Some(addr) = vnc_addr {
        let ca = tls
            .as_ref()
            .map(|material| material.cert_path.display().to_string())
            .unwrap_or_else(|| {
                store
                    .data_dir()
                    .keys_dir()
                    .join(rampart_web::tls::GENERATED_CERT_FILE)
                    .display()
                    .to_string()
            });
        println!(
            "vnc: listening on {addr} (try: VNC_USERNAME=USER@ACCOUNT@ASSET VNC_PASSWORD=TOKEN vncviewer -SecurityTypes VeNCrypt,X509Plain -X509CA {ca} {}::{}, with a token from rampart db token)",
            addr.ip(),
            addr.port()
        );
    }
    if let Some(addr) = rdp_addr {
        println!(
            "rdp: listening on {addr} (try: xfreerdp /v:{}:{} /sec:tls /cert:tofu /u:USER#ASSET /from-stdin, then the password: a token from rampart db token)",
            addr.ip(),
            addr.port()
        );
    }
    if let Some(addr) = kube_addr {
        println!(
            "kubernetes: listening on {addr} (try: rampart kube config --asset ASSET --user USER -o kubeconfig, then KUBECONFIG=kubeconfig kubectl get pods)"
        );
    }
    // The node joins the cluster (a cluster of one on SQLite) once its listeners are bound,
    // before the banner's last line and before it touches sessions.
    let audit_key = rampart_audit::read_private_key(&store.data_dir().audit_key_path())
        .map_err(anyhow::Error::msg)?;
    let advertise = config.node.advertise.clone().or_else(|| {
        (!http_addr.ip().is_unspecified()).then(|| {
            rampart_web::url(http_addr, tls.is_some())
                .trim_end_matches('/')
                .to_owned()
        })
    });
    // Other nodes trust this certificate when they relay a watcher to this node.
    let certificate = tls
        .as_ref()
        .and_then(|material| std::fs::read_to_string(&material.cert_path).ok());
    let joined =
        crate::cluster::join(&store, &config.node, &audit_key, advertise, certificate).await?;
    print_banner(&config, &store, &report, http_addr, ssh_addr, tls.as_ref())?;
    let listeners = [
        ("http", Some(http_addr)),
        ("ssh", Some(ssh_addr)),
        ("postgres", postgres_addr),
        ("agent", agent_addr),
        ("mysql", mysql_addr),
        ("redis", redis_addr),
        ("kube", kube_addr),
        ("vnc", vnc_addr),
        ("rdp", rdp_addr),
    ];
    for (what, addr) in listeners.into_iter().filter_map(|(w, a)| a.map(|a| (w, a))) {
        if !addr.ip().is_loopback() {
            tracing::warn!(
                listener = what,
                %addr,
                "listener is reachable from other hosts: restrict source addresses with a firewall \
                 (never 0.0.0.0/0 without an allow-list)"
            );
        }
    }
    let settings = serde_json::json!({
        "ssh_listen": ssh_addr.to_string(),
        "http_listen": http_addr.to_string(),
        "http_tls": match &config.http.tls {
            HttpTls::Off => "off (loopback, behind a proxy)".to_owned(),
            HttpTls::SelfSigned => "self-signed".to_owned(),
            HttpTls::Files { cert, .. } => cert.display().to_string(),
        },
        "http_session_idle_timeout": format_duration(config.http.session_idle),
        "http_session_lifetime": format_duration(config.http.session_lifetime),
        "master_key": config.master_key_describe(),
        "retention_days": config.audit.retention_days,
        crate::seals::INTERVAL_SETTING: config.audit.seal_interval.as_secs(),
        "syslog": config.audit.syslog.as_ref().map(|s| format!("{:?} {}", s.transport, s.address)),
        "webhook": config.audit.webhook.as_ref().map(|w| format!("http://{}{}", w.host, w.path)),
        "session_idle_timeout": config.sessions.idle_timeout.map(format_duration),
        "session_max_duration": config.sessions.max_duration.map(format_duration),
        "auth": auth_settings(&config.auth),
        "recording_fsync_interval": format!("{}ms", config.recording.fsync_interval.as_millis()),
        "recording_exec_cap": config.recording.exec_cap,
        "ssh_target_host_keys": config.target_host_keys.as_str(),
        "postgres_listen": postgres_addr.map(|addr| addr.to_string()),
        "postgres_allow_plain_loopback": config.postgres.settings.allow_plain_loopback,
        "mysql_listen": mysql_addr.map(|addr| addr.to_string()),
        "mysql_allow_plain_loopback": config.mysql.settings.allow_plain_loopback,
        "redis_listen": redis_addr.map(|addr| addr.to_string()),
        "redis_allow_plain_loopback": config.redis.settings.allow_plain_loopback,
        "redis_deny_commands": config.redis.settings.deny.to_string(),
        "alerts": crate::detectors::describe(&config.detectors),
        "kube_listen": kube_addr.map(|addr| addr.to_string()),
        "vnc_listen": vnc_addr.map(|addr| addr.to_string()),
        "rdp_listen": rdp_addr.map(|addr| addr.to_string()),
        "node": config.node.name,
    });
    // Crash recovery, part one: this node's previous run never said it stopped, or (a node
    // alone, or its first start) the log does not end in a final signed head.
    let crashed = joined.previous_run_crashed();
    let alone = joined.registered.others_up == 0;
    if (crashed || (alone && !report.initialized_database))
        && crate::seals::record_unclean_stop(&store, crashed).await?
    {
        tracing::warn!(
            "the previous run stopped without a clean shutdown: recorded in the audit log"
        );
    }
    let started = rampart_core::audit::AuditEvent::ServerStarted {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        settings,
    };
    store
        .record_event(&rampart_core::audit::Actor::System, &started)
        .await?;
    tracing::info!(%http_addr, data_dir = %config.data_dir.display(), "rampart started");

    let store = Arc::new(store);
    // Before the listeners take connections: a flood must leave descriptors for real users.
    let descriptors = crate::descriptors::raise_limit();
    let pre_auth = descriptors.ssh(config.ssh_pre_auth);
    tracing::info!(
        descriptors = descriptors.limit,
        ssh_unauthenticated = pre_auth.max_startups.full,
        http_connections = descriptors.http_connections,
        "file descriptor budget"
    );
    // The LDAP directory checks its users' passwords for every front's authenticator.
    let directory = config.ldap.clone().map(rampart_ldap::Directory::new);
    let password_directory = directory
        .clone()
        .map(|directory| Arc::new(directory) as Arc<dyn rampart_ldap::PasswordDirectory>);
    let gateway_settings = GatewaySettings {
        sessions: SessionDefaults {
            idle_timeout: config.sessions.idle_timeout,
            max_duration: config.sessions.max_duration,
        },
        auth: config.auth.clone(),
        recording: rampart_ssh::RecordingSettings {
            sync_interval: config.recording.fsync_interval,
            exec_cap: config.recording.exec_cap,
        },
        pre_auth,
        target_host_keys: config.target_host_keys,
        target_answer_timeout: config.target_answer_timeout,
        web_approval: config
            .ssh_web_approval
            .map(|timeout| rampart_ssh::WebApprovalSettings {
                timeout,
                portal_url: rampart_web::url(http_addr, tls.is_some()),
            }),
        directory: password_directory.clone(),
        replica: uploader
            .clone()
            .map(|uploader| Arc::new(uploader) as Arc<dyn rampart_audit::replica::Replica>),
    };
    // The web listener admits logins by the very same rules.
    let gateway_auth = gateway_settings.auth.clone();
    let (gateway, sealed) = Gateway::new(store.clone(), gateway_settings, &serve_lock)?;
    gateway
        .session_core()
        .live
        .set_bulk_transfer_alert(config.detectors.bulk_transfer_bytes);
    gateway
        .session_core()
        .live
        .set_approval_timeout(config.approval_timeout);
    for recording in &sealed {
        tracing::warn!(session = %recording.session, "sealed the recording of a session cut short by a restart (incomplete)");
    }
    // Sessions cannot outlive the process that carried them; each one's end anchors its
    // recording in the chain (sealed just now, or sealed before the crash).
    let recordings = store.data_dir().recordings_dir();
    let ended = store
        .end_live_sessions(
            &serve_lock,
            "node restarted during the session",
            |session| match sealed.iter().find(|r| r.session == session) {
                Some(recording) => Some(recording.anchor()),
                None => {
                    rampart_audit::verify_recording(&recordings, session, audit_key.public_key())
                        .ok()
                        .map(|report| rampart_core::audit::RecordingAnchor {
                            id: session.to_string(),
                            manifest_sha256: report.manifest_sha256,
                            complete: report.complete,
                        })
                }
            },
        )
        .await?;
    if !ended.is_empty() {
        tracing::warn!(
            count = ended.len(),
            "closed the records of sessions cut short by a restart"
        );
    }
    // A recording sealed just now whose session another node already ended ("node lost"):
    // that node sealed it from the bucket and the chain anchors its seal, so this node's own
    // seal must not replace it there.
    if uploader.is_some() {
        for recording in sealed.iter().filter(|r| !ended.contains(&r.session)) {
            let mark = rampart_s3::uploader::uploaded_mark(&recordings, recording.session);
            if let Err(err) = std::fs::write(&mark, b"") {
                tracing::warn!(session = %recording.session, error = %err, "cannot mark a lost session's recording as settled");
            }
        }
    }
    if let Some(uploader) = &uploader {
        crate::recording_store::resume(uploader, &recordings);
    }
    // One signal stops every listener.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let stop_rx_for_sealing = stop_rx.clone();
    // The web listener's browser terminals and live views go through the same gateway.
    let terminals = gateway.clone();
    // The PostgreSQL front shares the gateway's session core (live enforcement, shutdown) and
    // its authenticator (lockout, login rules).
    let postgres_task = postgres.map(|(listener, certificate)| {
        let front = rampart_postgres::PostgresFront::new(
            gateway.session_core(),
            gateway.authenticator(),
            gateway.dialer(),
            Some(certificate),
            config.postgres.settings.clone(),
        );
        tokio::spawn(rampart_postgres::run(
            front,
            listener,
            stopped(stop_rx.clone()),
        ))
    });
    let agent_task = match (agent_listener, gateway.dialer().agents()) {
        (Some(listener), Some(agents)) => {
            let host_key = crate::agent_mode::node_host_key(&store)?;
            Some(tokio::spawn(rampart_session::agents::run(
                listener,
                agents,
                host_key,
                stopped(stop_rx.clone()),
            )))
        }
        _ => None,
    };
    // Background health checks of the network domains' SSH-hop gateways.
    if let Some(hops) = gateway.dialer().hops() {
        tokio::spawn(hops.run_health_checks(
            config.agent.gateway_health_interval,
            stopped(stop_rx.clone()),
        ));
    }
    // The MySQL front likewise.
    let mysql_task = mysql.map(|(listener, certificate)| {
        let front = rampart_mysql::MysqlFront::new(
            gateway.session_core(),
            gateway.authenticator(),
            gateway.dialer(),
            Some(certificate),
            config.mysql.settings.clone(),
        );
        tokio::spawn(rampart_mysql::run(
            front,
            listener,
            stopped(stop_rx.clone()),
        ))
    });
    let redis_task = redis.map(|(listener, certificate)| {
        let front = rampart_redis::RedisFront::new(
            gateway.session_core(),
            gateway.authenticator(),
            gateway.dialer(),
            Some(certificate),
            config.redis.settings.clone(),
        );
        tokio::spawn(rampart_redis::run(
            front,
            listener,
            stopped(stop_rx.clone()),
        ))
    });
    let kube_task = kube.map(|(listener, certificate)| {
        let front = rampart_kube::KubeFront::new(
            gateway.session_core(),
            gateway.authenticator(),
            gateway.dialer(),
            certificate,
            config.kube.settings.clone(),
        );
        tokio::spawn(rampart_kube::run(front, listener, stopped(stop_rx.clone())))
    });
    // The native VNC front: desktop sessions as the browser's (`rampart_desktop::open`), over
    // RFB to stock viewers.
    let vnc_task = vnc.map(|(listener, certificate)| {
        let front = rampart_desktop::NativeVncFront::new(
            gateway.session_core(),
            gateway.authenticator(),
            gateway.dialer(),
            certificate,
            config.vnc.settings.clone(),
        );
        tokio::spawn(rampart_desktop::native_vnc::run(
            front,
            listener,
            stopped(stop_rx.clone()),
        ))
    });
    // The native RDP front: the same desktop sessions, over RDP to stock RDP clients.
    let rdp_task = rdp.map(|(listener, certificate)| {
        let front = rampart_desktop::NativeRdpFront::new(
            gateway.session_core(),
            gateway.authenticator(),
            gateway.dialer(),
            certificate,
            config.rdp.settings.clone(),
        );
        tokio::spawn(rampart_desktop::native_rdp::run(
            front,
            listener,
            stopped(stop_rx.clone()),
        ))
    });
    let live_sessions = gateway.session_core().live.clone();
    let ssh_task = tokio::spawn(gateway.run(ssh, stopped(stop_rx.clone())));
    let web_settings = WebSettings {
        auth: gateway_auth,
        secure_cookies: tls.is_some(),
        session_idle: config.http.session_idle,
        session_lifetime: config.http.session_lifetime,
        max_connections: rampart_web::MAX_CONNECTIONS.min(descriptors.http_connections),
        ssh_port: Some(ssh_addr.port()),
        requests: config.requests.clone(),
        ssh_cert_ttl: config.ssh_cert_ttl,
        kube: kube_addr
            .map(|addr| kubeconfig_source(&config, &store, tls.as_ref(), addr))
            .transpose()?,
    };
    let metrics_task = metrics_listener.map(|listener| {
        tokio::spawn(rampart_web::metrics::run_listener(
            listener,
            store.clone(),
            metrics.clone(),
            stopped(stop_rx.clone()),
        ))
    });
    // Portal sign-in through the OpenID Connect provider, and the check that the provider
    // still gives each user it provisioned tokens (`[oidc]`).
    let oidc = config
        .oidc
        .clone()
        .map(rampart_oidc::Provider::new)
        .transpose()
        .map_err(|err| anyhow::anyhow!("oidc: {err}"))?;
    // Passkeys' relying party: `[webauthn]`, or `localhost` on the HTTP listener's port.
    let passkeys = config
        .webauthn
        .passkeys(http_addr.port(), tls.is_some())
        .map_err(|err| anyhow::anyhow!("webauthn: {err}"))?;
    tracing::info!(
        rp_id = passkeys.rp_id(),
        origin = passkeys.rp_origin(),
        "passkeys accepted for this relying party and origin"
    );
    let mut web_state = WebState::new(store.clone(), web_settings).with_passkeys(Some(passkeys));
    if let Some(provider) = &oidc {
        tracing::info!(issuer = %provider.settings().issuer, "single sign-on configured");
        web_state = web_state.with_oidc(provider.clone());
    }
    let web_task = tokio::spawn(rampart_web::run(
        http,
        web_state
            .with_directory(password_directory)
            .with_gateway(terminals)
            .with_rotator(crate::commands::rotation::rotator(
                &store,
                &config,
                &rampart_core::audit::Actor::System,
            ))
            .with_reports(std::sync::Arc::new(crate::report::Reporter {
                store: store.clone(),
                seal_interval: config.audit.seal_interval,
            }))
            .with_metrics(metrics.clone())
            .with_bucket_check(bucket_check(&config)?)
            .with_cluster(rampart_web::relay::ClusterLink {
                node: config.node.name.clone(),
                key: Arc::new(audit_key.clone()),
            }),
        tls.map(|t| t.config),
        stopped(stop_rx),
    ));
    // The audit chain head is signed every seal interval, and as final at shutdown.
    let sealing = tokio::spawn(crate::seals::run(
        store.clone(),
        audit_key.clone(),
        config.audit.seal_interval,
        stop_rx_for_sealing,
    ));
    // Heartbeats, the sweep that ends the sessions of nodes that stopped sending theirs, and
    // who leads the cluster.
    let membership = joined.membership;
    let (leader_tx, leader) = tokio::sync::watch::channel(false);
    let heartbeats = tokio::spawn(crate::cluster::run(
        store.clone(),
        membership.clone(),
        live_sessions,
        recovery(&config, &audit_key)?,
        leader_tx,
        stop_tx.subscribe(),
    ));
    // The work that must run once per cluster runs on its leader (on a node alone: here),
    // beside the listeners, never blocking them. Each task is started when this node becomes
    // the leader and stopped when it stops leading.
    let mut background = Vec::new();
    let mut once_per_cluster = |start: Box<dyn FnMut(Stop) -> BoxedTask + Send>| {
        background.push(tokio::spawn(crate::cluster::while_leader(
            leader.clone(),
            stop_tx.subscribe(),
            start,
        )));
    };
    // SIEM forwarding, each sink from its stored progress.
    // (Each sink's starting point was fixed before the banner: `sink_status` saved it.)
    for (sink, _) in sinks {
        tracing::info!(sink = %sink.name(), "audit sink configured");
        let store = store.clone();
        once_per_cluster(Box::new(move |stop| {
            let (store, sink) = (store.clone(), sink.clone());
            Box::pin(async move {
                match store.sink_status(&sink.name()).await {
                    Ok(status) => crate::forwarder::run(store, sink, status, stop).await,
                    Err(err) => {
                        tracing::error!(sink = %sink.name(), error = %err, "cannot read an audit sink's progress")
                    }
                }
            })
        }));
    }
    // The anomaly detectors that read the audit log, when any is configured (`[alerts]`).
    if config.detectors.reads_the_audit_log() {
        let (store, settings) = (store.clone(), config.detectors.clone());
        once_per_cluster(Box::new(move |stop| {
            Box::pin(crate::detectors::run(store.clone(), settings.clone(), stop))
        }));
    }
    // The LDAP directory's users, keys and groups, synced every `ldap.sync_interval`.
    if let Some(directory) = directory
        && let Some(interval) = directory.settings().sync_interval
    {
        let store = store.clone();
        once_per_cluster(Box::new(move |stop| {
            Box::pin(rampart_ldap::sync::run(
                store.clone(),
                directory.clone(),
                interval,
                stopped(stop),
            ))
        }));
    }
    let (retention_store, days) = (store.clone(), config.audit.retention_days);
    once_per_cluster(Box::new(move |stop| {
        Box::pin(retention_daily(retention_store.clone(), days, stop))
    }));
    // Credential rotation: rotations a dead process left are resumed, then the schedule runs.
    let rotator =
        crate::commands::rotation::rotator(&store, &config, &rampart_core::audit::Actor::System);
    once_per_cluster(Box::new(move |stop| {
        Box::pin(crate::commands::rotation::run_in_serve(
            rotator.clone(),
            stop,
        ))
    }));
    if let Some(provider) = oidc {
        let store = store.clone();
        once_per_cluster(Box::new(move |stop| {
            Box::pin(rampart_oidc::check::run(
                provider.clone(),
                store.clone(),
                stopped(stop),
            ))
        }));
    }
    shutdown.await;
    let _ = stop_tx.send(true);
    // A task that panicked is reported, not taken for a clean stop.
    if let Err(err) = sealing.await {
        tracing::error!(error = %err, "the audit sealing task failed");
    }
    for task in background {
        if let Err(err) = task.await {
            tracing::error!(error = %err, "a background task failed");
        }
    }
    if let Some(task) = metrics_task
        && let Err(err) = task.await
    {
        tracing::error!(error = %err, "the metrics listener failed");
    }
    let ssh_result = ssh_task.await;
    if let Some(task) = postgres_task {
        task.await.context("postgres listener failed")?;
    }
    if let Some(task) = agent_task {
        task.await.context("agent listener failed")?;
    }
    if let Some(task) = mysql_task {
        task.await.context("mysql listener failed")?;
    }
    if let Some(task) = redis_task {
        task.await.context("redis listener failed")?;
    }
    if let Some(task) = kube_task {
        task.await.context("kubernetes listener failed")?;
    }
    if let Some(task) = vnc_task {
        task.await.context("vnc listener failed")?;
    }
    if let Some(task) = rdp_task {
        task.await.context("rdp listener failed")?;
    }
    web_task
        .await
        .context("http listener failed")?
        .context("http listener failed")?;
    ssh_result.context("ssh listener failed")?;
    if let Some(uploader) = uploader {
        crate::recording_store::drain(uploader).await;
    }

    if let Err(err) = heartbeats.await {
        tracing::error!(error = %err, "the cluster heartbeat task failed");
    }
    crate::cluster::leave(&store, &membership).await;
    crate::seals::sign_at_shutdown(&store, &audit_key, &membership.name).await;
    tracing::info!("rampart stopped");
    if let Some(access_log) = access_log {
        access_log.flush();
    }
    if let Some(store) = Arc::into_inner(store) {
        store.close().await;
    }
    drop(serve_lock);
    Ok(())
}

/// A background task's stop signal, and the task as `while_leader` starts it.
type Stop = tokio::sync::watch::Receiver<bool>;
type BoxedTask = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// What seals a lost node's recordings from the bucket, when recordings go to S3.
fn recovery(
    config: &Config,
    key: &rampart_audit::PrivateKey,
) -> anyhow::Result<Option<Arc<crate::cluster::Recovery>>> {
    let Some(settings) = config.recording_store.s3().cloned() else {
        return Ok(None);
    };
    Ok(Some(Arc::new(crate::cluster::Recovery {
        client: rampart_s3::Client::new(settings)?,
        key: key.clone(),
    })))
}

/// `/readyz`'s check of the recording bucket, when recordings go to S3.
fn bucket_check(config: &Config) -> anyhow::Result<Option<rampart_web::BucketCheck>> {
    let Some(settings) = config.recording_store.s3().cloned() else {
        return Ok(None);
    };
    let client = rampart_s3::Client::new(settings)?;
    Ok(Some(rampart_web::BucketCheck(Arc::new(move || {
        client
            .bucket_facts()
            .map(|_| ())
            .map_err(|err| err.to_string())
    }))))
}

/// Applies the retention period now and then once a day.
async fn retention_daily(
    store: Arc<Store>,
    days: u32,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut daily = tokio::time::interval(Duration::from_secs(24 * 60 * 60));
    loop {
        tokio::select! {
            _ = daily.tick() => {
                match crate::commands::audit::apply_retention(&store, &rampart_core::audit::Actor::System, days).await {
                    Ok(removed) if !removed.is_empty() => {
                        tracing::info!(sessions = removed.len(), days, "retention removed expired sessions and recordings");
                    }
                    Ok(_) => {}
                    Err(err) => tracing::error!(error = %err, "cannot apply retention"),
                }
            }
            _ = stop.changed() => return,
        }
    }
}

/// Installs the SIGINT and SIGTERM handlers now, and returns a future that completes when one of
/// the signals arrives. Installing before the "listening" line is printed matters: a signal that
/// came before its handler would kill the process instead of stopping it cleanly.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => tracing::info!("SIGINT received, shutting down"),
            _ = terminate.recv() => tracing::info!("SIGTERM received, shutting down"),
        }
    })
}

/// Logs go to stderr for the operator and, as JSON lines, to `logs/rampart.log` in the data
/// directory for later search.
fn init_logging(
    config: &Config,
    store: &Store,
) -> anyhow::Result<Option<crate::access_log::AccessFile>> {
    let path = store.data_dir().logs_dir().join("rampart.log");
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot open log file {}", path.display()))?;
    // Access records (target rampart::access) go where log.access says; everything else to
    // standard error and rampart.log.
    let level = config.log_level;
    let access = config.ops.access_log;
    let general = move |meta: &tracing::Metadata<'_>| {
        level >= *meta.level()
            && (meta.target() != rampart_ssh::ACCESS_TARGET || access == AccessLog::Log)
    };
    let stderr_layer = fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_filter(filter_fn(general));
    let file_layer = fmt::layer()
        .json()
        .with_writer(Mutex::new(file))
        .with_filter(filter_fn(general));
    let mut access_writer = None;
    let access_layer = match access {
        AccessLog::File => {
            let path = store.data_dir().logs_dir().join("access.log");
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(&path)
                .with_context(|| format!("cannot open access log {}", path.display()))?;
            let writer = crate::access_log::AccessFile::start(file)
                .context("cannot start the access log writer")?;
            access_writer = Some(writer.clone());
            Some(
                fmt::layer()
                    .json()
                    .with_current_span(false)
                    .with_span_list(false)
                    .with_writer(writer.clone())
                    .with_filter(filter_fn(|meta: &tracing::Metadata<'_>| {
                        meta.target() == rampart_ssh::ACCESS_TARGET
                    })),
            )
        }
        AccessLog::Log | AccessLog::Off => None,
    };
    tracing_subscriber::registry()
        .with(stderr_layer)
        .with(file_layer)
        .with(access_layer)
        .try_init()
        .context("cannot start logging")?;
    Ok(access_writer)
}

fn print_banner(
    config: &Config,
    store: &Store,
    report: &OpenReport,
    http: SocketAddr,
    ssh: SocketAddr,
    tls: Option<&rampart_web::tls::TlsMaterial>,
) -> anyhow::Result<()> {
    let dir = store.data_dir();
    let host_key = node_keys::public_key_of(&dir.host_key_path())?;
    let fingerprint = parse_public_keys("host key", &host_key)?
        .first()
        .map(|key| key.fingerprint.clone())
        .unwrap_or_default();
    println!(
        "Rampart {} serving data directory {}",
        env!("CARGO_PKG_VERSION"),
        dir.root().display()
    );
    if report.created_data_dir || report.initialized_database {
        println!();
        println!("First start: created the data directory (mode 0700), its database and keys:");
        if report.generated_master_key {
            println!(
                "  vault master key   {} (mode 0600). Back it up apart from the database:",
                dir.master_key_path().display()
            );
            println!("                     without it no vaulted secret can be read.");
        } else {
            println!(
                "  vault master key   supplied by {}",
                config.master_key_describe()
            );
        }
        println!("  ssh host key       {fingerprint}");
        println!("  audit signing key  {}", dir.audit_key_path().display());
        println!();
        println!("Next steps (in another terminal, same --data-dir):");
        println!("  rampart user add alice --role admin --key ~/.ssh/id_ed25519.pub");
        println!("  rampart asset add web-01 --host 10.0.0.5 --port 22");
        println!("  rampart account add root@web-01 --password-stdin");
        println!("  rampart grant add --user alice --asset web-01 --account root");
        println!(
            "  rampart user password alice && rampart user mfa enroll alice   # for the web portal"
        );
        println!();
    }
    if let Some(mode) = report.loose_permissions {
        println!(
            "warning: data directory mode is {mode:04o}: other local users can look in; run chmod 700 {}",
            dir.root().display()
        );
    }
    println!("ssh host key fingerprint: {fingerprint}");
    // Every ProxyJump hop presents the host key certified by the host CA for the asset's name
    // and address: this one line trusts them all.
    let host_ca = rampart_store::ssh_ca::CertificateAuthority::load(
        dir,
        rampart_store::ssh_ca::CaKind::Host,
    )?;
    println!(
        "ProxyJump hops: add this line to ~/.ssh/known_hosts (or `rampart ca show --host`):\n  {}",
        host_ca.known_hosts_line()
    );
    println!(
        "ssh: listening on {ssh} (try: ssh -p {} USER@ACCOUNT@ASSET@{})",
        ssh.port(),
        ssh.ip()
    );
    match tls {
        Some(tls) => {
            println!(
                "https certificate: {} ({}{})",
                tls.fingerprint,
                tls.cert_path.display(),
                if tls.generated {
                    ", self-signed, generated now"
                } else {
                    ""
                }
            );
        }
        None => {
            println!("http: plain HTTP on loopback (http.tls = false): put a TLS proxy in front")
        }
    }
    // Printed last: scripts and tests wait for this line.
    println!(
        "http: listening on {} (api: /api/v1, openapi: /api/v1/openapi.json, health: /healthz, readiness: /readyz)",
        rampart_web::url(http, tls.is_some())
    );
    println!("Stop with Ctrl-C or SIGTERM.");
    Ok(())
}

/// The `[auth]` settings in force, under their configuration keys (for `server_started`).
fn auth_settings(auth: &rampart_core::login_rules::AuthSettings) -> serde_json::Value {
    use rampart_core::login_rules::format_cidr_list;
    use rampart_core::time_arg::format_duration;
    serde_json::json!({
        "allow_from": format_cidr_list(&auth.global.allow_from),
        "deny_from": format_cidr_list(&auth.global.deny_from),
        "login_hours": auth.global.hours.as_ref().map(ToString::to_string),
        "trusted_proxies": format_cidr_list(&auth.trusted_proxies),
        "lockout_threshold": auth.lockout.threshold,
        "lockout_window": format_duration(auth.lockout.window),
        "lockout_duration": format_duration(auth.lockout.lock_for),
        "require_mfa": auth.require_mfa,
    })
}

/// A database front's listener (`WHAT.listen`), if configured, with the node's certificate.
/// What the API's kubeconfigs name: `kube.public_address` (or the listener's address) and the
/// node's certificate, the one the Kubernetes listener presents.
fn kubeconfig_source(
    config: &Config,
    store: &Store,
    tls: Option<&rampart_web::tls::TlsMaterial>,
    listening: std::net::SocketAddr,
) -> anyhow::Result<rampart_web::KubeconfigSource> {
    let cert_path = match tls {
        Some(material) => material.cert_path.clone(),
        None => store
            .data_dir()
            .keys_dir()
            .join(rampart_web::tls::GENERATED_CERT_FILE),
    };
    let ca_pem = std::fs::read(&cert_path)
        .with_context(|| format!("cannot read the node's certificate {}", cert_path.display()))?;
    let server = match &config.kube.public_address {
        Some(address) => format!("https://{address}"),
        None => format!("https://{listening}"),
    };
    Ok(rampart_web::KubeconfigSource { server, ca_pem })
}

async fn database_listener(
    what: &str,
    listen: Option<std::net::SocketAddr>,
    certificate: &dyn Fn() -> anyhow::Result<Arc<rampart_web::tls::ServerConfig>>,
) -> anyhow::Result<Option<(TcpListener, Arc<rampart_web::tls::ServerConfig>)>> {
    let Some(addr) = listen else {
        return Ok(None);
    };
    let certificate = certificate()?;
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {what}.listen {addr}"))?;
    Ok(Some((listener, certificate)))
}
