//! The DPAA2 (fsl-mc) checks.

use super::ctx::Ctx;
use super::facts::{ModuleStatus, TEN64_VFIO_PAGE, VFIO_FSL_MC_MODULE};
use super::finding::{Finding, Severity};

pub(super) fn check_fsl_mc(ctx: &Ctx<'_>, out: &mut Vec<Finding>) {
    let Some(fsl) = &ctx.facts.fsl_mc else {
        return;
    };
    let status = ctx
        .module(VFIO_FSL_MC_MODULE)
        .unwrap_or(ModuleStatus::Unknown);
    if !fsl.vfio_driver && matches!(status, ModuleStatus::Missing | ModuleStatus::Unknown) {
        out.push(Finding::new(
            "fsl-mc-vfio-missing",
            if status == ModuleStatus::Missing {
                Severity::Error
            } else {
                Severity::Warning
            },
            None,
            "/sys/bus/fsl-mc/drivers/vfio-fsl-mc",
            "this host has DPAA2 (fsl-mc) but no vfio-fsl-mc driver: DPAA2 containers (dprc.N) \
             cannot be passed to a VM",
            "use a kernel with CONFIG_VFIO_FSL_MC (mainline since 5.11) or NXP's LSDK kernel",
        ));
    }
    out.push(Finding::new(
        "fsl-mc-irq-cfg",
        Severity::Info,
        None,
        "/sys/bus/fsl-mc",
        "a DPAA2 container given to a VM must be created with DPRC_CFG_OPT_IRQ_CFG_ALLOWED (restool \
         dprc create ... --options=DPRC_CFG_OPT_IRQ_CFG_ALLOWED,...) so the MC firmware can route \
         its interrupts to the VM; containers used by DPDK do not need it",
        format!("see {TEN64_VFIO_PAGE}"),
    ));
}

#[cfg(test)]
mod tests {
    use crate::doctor::testkit::*;
    use crate::doctor::*;

    #[test]
    fn fsl_mc() {
        let f = fires("fsl-mc-vfio-missing", |f, _| {
            f.fsl_mc = Some(FslMcFacts {
                vfio_driver: false,
                ..FslMcFacts::default()
            });
            f.modules
                .insert(VFIO_FSL_MC_MODULE.into(), ModuleStatus::Missing);
        });
        assert!(f.remedy.contains("CONFIG_VFIO_FSL_MC"));
        quiet("fsl-mc-vfio-missing", |f, _| {
            f.fsl_mc = Some(FslMcFacts {
                vfio_driver: true,
                ..FslMcFacts::default()
            });
            f.modules
                .insert(VFIO_FSL_MC_MODULE.into(), ModuleStatus::Loaded);
        });
        let f = fires("module-not-loaded", |f, _| {
            f.fsl_mc = Some(FslMcFacts {
                vfio_driver: false,
                ..FslMcFacts::default()
            });
            f.modules
                .insert(VFIO_FSL_MC_MODULE.into(), ModuleStatus::Available);
        });
        assert_eq!(f.remedy, "modprobe vfio-fsl-mc");
        let (findings, _) = run_with(|f, _| {
            f.fsl_mc = Some(FslMcFacts {
                vfio_driver: false,
                ..FslMcFacts::default()
            });
            f.modules
                .insert(VFIO_FSL_MC_MODULE.into(), ModuleStatus::Available);
            f.modules.insert("vfio_pci".into(), ModuleStatus::Available);
        });
        let remedies: Vec<&str> = findings
            .iter()
            .filter(|f| f.id == "module-not-loaded")
            .map(|f| f.remedy.as_str())
            .collect();
        assert_eq!(remedies.len(), 2, "{remedies:?}");
        assert!(remedies.contains(&"modprobe vfio-fsl-mc"));
        fires("fsl-mc-irq-cfg", |f, _| {
            f.fsl_mc = Some(FslMcFacts {
                vfio_driver: true,
                ..FslMcFacts::default()
            });
        });
        quiet("fsl-mc-irq-cfg", |_, _| {});
    }
}
