//! `mss sim serve`: the simulator alone, so another implementation of the pipeline can be
//! measured against the very same endpoints and data.

use std::path::Path;

use anyhow::Context;
use serde_json::json;

use mss_sim::{Sim, SimConfig, SimTenant};

use crate::scenario::Scenario;

pub async fn serve(
    sc: Scenario,
    listen: &str,
    ca_out: &Path,
    write_config: Option<&Path>,
) -> anyhow::Result<()> {
    let tenants = sc.tenants()?;
    let addr: std::net::SocketAddr = listen
        .parse()
        .with_context(|| format!("--listen {listen:?} is not HOST:PORT"))?;
    // Simulator credentials are not secrets: they are printed so a client can use them.
    let sim_tenants: Vec<SimTenant> = tenants
        .iter()
        .zip(&sc.tenants)
        .map(|(t, st)| SimTenant {
            azure_tenant_id: t.azure_tenant_id.clone(),
            client_id: format!("{}-app", t.id),
            client_secret: format!("sim-secret-{}", t.id),
            alerts: st.alerts.clone(),
        })
        .collect();
    let sim = Sim::start(
        SimConfig {
            tenants: sim_tenants,
            opsramp_tenant_id: "client_1234".into(),
            opsramp_client_id: "mss-soc".into(),
            opsramp_client_secret: "sim-secret-opsramp".into(),
            state_file: None,
            all_visible: true,
            start_clock: sc.end,
        },
        addr,
    )
    .await?;
    std::fs::write(ca_out, sim.ca_pem())
        .with_context(|| format!("writing {}", ca_out.display()))?;
    let info = json!({
        "token": format!("{}/{{azure_tenant_id}}/oauth2/v2.0/token", sim.authority_host()),
        "authority_host": sim.authority_host(),
        "graph": sim.graph_base(),
        "opsramp": sim.opsramp_base(),
        "opsramp_token": format!("{}/tenancy/auth/oauth/token", sim.opsramp_base()),
        "opsramp_tenant_id": "client_1234",
        "opsramp_client_id": "mss-soc",
        "opsramp_client_secret": "sim-secret-opsramp",
        "ca": ca_out.display().to_string(),
        "tenants": tenants.iter().map(|t| json!({
            "id": t.id, "azure_tenant_id": t.azure_tenant_id,
            "client_id": format!("{}-app", t.id), "client_secret": format!("sim-secret-{}", t.id)
        })).collect::<Vec<_>>(),
    });
    if let Some(dir) = write_config {
        let ca = std::fs::canonicalize(ca_out).unwrap_or_else(|_| ca_out.to_path_buf());
        let creds: Vec<(String, String, String)> = tenants
            .iter()
            .map(|t| {
                (
                    t.id.clone(),
                    format!("{}-app", t.id),
                    format!("sim-secret-{}", t.id),
                )
            })
            .collect();
        let cfg = shared::embedded::write_for_simulator(
            dir,
            &sim.authority_host(),
            &sim.graph_base(),
            &sim.graph_beta_base(),
            &sim.mde_base(),
            &sim.loganalytics_base(),
            &sim.opsramp_base(),
            "client_1234",
            &ca,
            ("mss-soc", "sim-secret-opsramp"),
            &creds,
        )?;
        for t in &tenants {
            let f = dir.join(format!("tenant-{}.toml", t.id));
            std::fs::write(&f, toml::to_string(&t.source)?)
                .with_context(|| format!("writing {}", f.display()))?;
        }
        eprintln!(
            "wrote {} (with secrets.toml and tenant-*.toml beside it)",
            cfg.display()
        );
    }
    println!("{}", serde_json::to_string_pretty(&info)?);
    eprintln!("serving until Ctrl-C");
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    sim.shutdown().await;
    Ok(())
}
