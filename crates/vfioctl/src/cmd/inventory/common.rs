//! What the reading commands share: the JSON version, the IOMMU-off note and table layout.

use vfioctl_core::fslmc::FslMcObject;

/// Version of every JSON document vfioctl prints.
pub const JSON_VERSION: u32 = 1;

/// Said by every reading command on a host without IOMMU groups.
pub(super) const IOMMU_OFF_NOTE: &str = "the IOMMU is off on this host: no device has an IOMMU group, so \
none can be passed to a VM; enable VT-d/AMD-Vi (x86) or the SMMU (arm64) in the firmware and boot \
with intel_iommu=on (Intel) or amd_iommu=on (AMD); 'vfioctl doctor' checks the rest";

/// Pads columns so the table reads like lspci; the last column is not padded.
pub(super) fn align<const N: usize>(header: &[String; N], rows: &[[String; N]]) -> Vec<String> {
    let mut widths = [0usize; N];
    for row in std::iter::once(header).chain(rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    std::iter::once(header)
        .chain(rows)
        .map(|row| {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i + 1 == N {
                    line.push_str(cell);
                } else {
                    line.push_str(&format!("{cell:<width$}  ", width = widths[i]));
                }
            }
            line.trim_end().to_owned()
        })
        .collect()
}

/// A DPAA2 object on one line: its name, its driver and its network interfaces, `gap` apart.
pub(super) fn object_line(obj: &FslMcObject, gap: &str) -> String {
    let interfaces = if obj.net_interfaces.is_empty() {
        String::new()
    } else {
        format!("{gap}({})", obj.net_interfaces.join(", "))
    };
    format!(
        "{}{gap}{}{interfaces}",
        obj.name,
        obj.driver.as_deref().unwrap_or("(no driver)")
    )
}
