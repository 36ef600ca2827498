//! The lines `list -v` and `list -k` add under a device's row, as `lspci -v` and `lspci -k` add
//! them under theirs (tab-indented, `Name: value`).

use vfioctl_core::PciDevice;

/// `-v`: what tells two alike devices apart and what passthrough depends on.
pub(super) fn verbose_lines(d: &PciDevice) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(sub) = d.subsystem {
        out.push(format!("\tSubsystem: {sub}"));
    }
    out.push(format!(
        "\tIOMMU group: {}",
        d.iommu_group
            .map_or("none (cannot be passed to a VM)".to_owned(), |g| g
                .to_string())
    ));
    if let Some(node) = d.numa_node.filter(|n| *n >= 0) {
        out.push(format!("\tNUMA node: {node}"));
    }
    if let Some(state) = &d.power_state {
        out.push(format!("\tPower state: {state}"));
    }
    out.push(format!(
        "\tReset methods: {}",
        match &d.reset_method {
            Some(m) if !m.is_empty() => m.join(", "),
            Some(_) => "none enabled".to_owned(),
            None => "none".to_owned(),
        }
    ));
    out
}

/// `-k`: the driver bound now and the modules that could drive the device (the likely driver
/// `restore` gives it back to when vfioctl did not bind it), and its VFIO device file.
pub(super) fn kernel_lines(
    d: &PciDevice,
    modules: &[String],
    vfio_device: Option<&str>,
) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(driver) = &d.driver {
        out.push(format!("\tKernel driver in use: {driver}"));
    }
    if let Some(o) = &d.driver_override {
        out.push(format!("\tDriver override: {o}"));
    }
    if !modules.is_empty() {
        out.push(format!("\tKernel modules: {}", modules.join(", ")));
    }
    if let Some(cdev) = vfio_device {
        out.push(format!("\tVFIO device: /dev/vfio/devices/{cdev}"));
    }
    out
}
