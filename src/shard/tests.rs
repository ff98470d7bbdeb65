use super::*;
use std::collections::HashMap;

fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

fn auto(shards: Option<u32>, vars: &[(&str, &str)]) -> Result<Shard, ShardError> {
    ShardSpec::Auto.resolve(shards, env(vars))
}

#[test]
fn test_parse_fixed_shard() {
    assert_eq!(
        "2/7".parse::<ShardSpec>().unwrap(),
        ShardSpec::Fixed(Shard { index: 2, count: 7 })
    );
    assert_eq!("auto".parse::<ShardSpec>().unwrap(), ShardSpec::Auto);
}

#[test]
fn test_parse_bad_shards_are_refused() {
    for bad in [
        "", "3", "7/7", "8/7", "0/0", "-1/3", "+1/3", "1/ 3", "a/b", "1/3/5",
    ] {
        assert!(bad.parse::<ShardSpec>().is_err(), "{bad:?}");
    }
}

#[test]
fn test_auto_slurm_min_max_count_gives_offset_index() {
    let vars = [
        ("SLURM_ARRAY_TASK_ID", "3"),
        ("SLURM_ARRAY_TASK_MIN", "1"),
        ("SLURM_ARRAY_TASK_MAX", "4"),
        ("SLURM_ARRAY_TASK_COUNT", "4"),
        ("SLURM_ARRAY_TASK_STEP", "1"),
    ];
    assert_eq!(auto(None, &vars).unwrap(), Shard { index: 2, count: 4 });
}

#[test]
fn test_auto_slurm_count_only_gives_id() {
    let vars = [
        ("SLURM_ARRAY_TASK_ID", "0"),
        ("SLURM_ARRAY_TASK_COUNT", "3"),
    ];
    assert_eq!(auto(None, &vars).unwrap(), Shard { index: 0, count: 3 });
}

#[test]
fn test_auto_slurm_list_or_step_is_refused() {
    let list = [
        ("SLURM_ARRAY_TASK_ID", "3"),
        ("SLURM_ARRAY_TASK_MIN", "1"),
        ("SLURM_ARRAY_TASK_MAX", "7"),
        ("SLURM_ARRAY_TASK_COUNT", "3"),
    ];
    let step = [
        ("SLURM_ARRAY_TASK_ID", "2"),
        ("SLURM_ARRAY_TASK_MIN", "0"),
        ("SLURM_ARRAY_TASK_MAX", "6"),
        ("SLURM_ARRAY_TASK_STEP", "2"),
    ];
    assert!(matches!(
        auto(None, &list),
        Err(ShardError::SlurmNotContiguous { .. })
    ));
    assert!(matches!(
        auto(None, &step),
        Err(ShardError::SlurmNotContiguous { .. })
    ));
}

#[test]
fn test_auto_slurm_without_count_is_refused() {
    let vars = [("SLURM_ARRAY_TASK_ID", "1")];
    assert!(matches!(auto(None, &vars), Err(ShardError::SlurmNoCount)));
}

#[test]
fn test_auto_slurm_with_shards_uses_task_id_for_a_rerun() {
    let rerun = [
        ("SLURM_ARRAY_TASK_ID", "2"),
        ("SLURM_ARRAY_TASK_MIN", "2"),
        ("SLURM_ARRAY_TASK_MAX", "2"),
        ("SLURM_ARRAY_TASK_COUNT", "1"),
    ];
    let one_based = [
        ("SLURM_ARRAY_TASK_ID", "1"),
        ("SLURM_ARRAY_TASK_MIN", "1"),
        ("SLURM_ARRAY_TASK_MAX", "4"),
    ];
    assert_eq!(auto(Some(4), &rerun).unwrap(), Shard { index: 2, count: 4 });
    assert!(matches!(
        auto(Some(4), &one_based),
        Err(ShardError::SlurmBeyondCount { var: "MAX", .. })
    ));
}

#[test]
fn test_auto_kubernetes_needs_count_from_flag_or_env() {
    let index = [("JOB_COMPLETION_INDEX", "5")];
    let with_env = [("JOB_COMPLETION_INDEX", "5"), (SHARDS_ENV, "8")];
    assert!(matches!(
        auto(None, &index),
        Err(ShardError::KubernetesNoCount)
    ));
    assert_eq!(auto(Some(8), &index).unwrap(), Shard { index: 5, count: 8 });
    assert_eq!(auto(None, &with_env).unwrap(), Shard { index: 5, count: 8 });
    assert!(matches!(
        auto(Some(5), &index),
        Err(ShardError::KubernetesBeyondCount { .. })
    ));
    assert!(matches!(
        auto(Some(9), &with_env),
        Err(ShardError::CountsDisagree { flag: 9, env: 8 })
    ));
}

#[test]
fn test_auto_without_or_with_both_schedulers_is_refused() {
    let both = [("JOB_COMPLETION_INDEX", "0"), ("SLURM_ARRAY_TASK_ID", "0")];
    let garbage = [("JOB_COMPLETION_INDEX", "one")];
    let huge = [
        ("SLURM_ARRAY_TASK_ID", "0"),
        ("SLURM_ARRAY_TASK_MIN", "0"),
        ("SLURM_ARRAY_TASK_MAX", "18446744073709551615"),
    ];
    assert!(matches!(auto(Some(2), &[]), Err(ShardError::NoScheduler)));
    assert!(matches!(
        auto(Some(2), &both),
        Err(ShardError::TwoSchedulers)
    ));
    assert!(matches!(
        auto(Some(2), &garbage),
        Err(ShardError::NotANumber { .. })
    ));
    assert!(matches!(auto(None, &huge), Err(ShardError::TooMany { .. })));
}

#[test]
fn test_key_is_path_below_its_root_or_a_named_file_name() {
    let roots = [PathBuf::from("/data/in/"), PathBuf::from("extra/x.pdf")];
    assert_eq!(
        key(&roots, Path::new("/data/in/a/b.pdf")),
        (Some(0), &b"a/b.pdf"[..])
    );
    assert_eq!(
        key(&roots, Path::new("extra/x.pdf")),
        (Some(1), &b"x.pdf"[..])
    );
    assert_eq!(key(&roots, Path::new("/else")), (None, &b"/else"[..]));
}

#[test]
fn test_shard_of_is_the_documented_formula() {
    // printf 'a/b.pdf' | sha256sum: e06332908d7e55f0…; 0xe06332908d7e55f0 % 7 = 5.
    let d = digest(b"a/b.pdf");

    assert_eq!(d[..8], [0xe0, 0x63, 0x32, 0x90, 0x8d, 0x7e, 0x55, 0xf0]);
    assert_eq!(shard_of(&d, 7), 5);
    assert_eq!(shard_of(&d, 4), 0);
    assert_eq!(shard_of(&d, 1), 0);
}

#[test]
fn test_every_key_has_exactly_one_owner() {
    let roots = [PathBuf::from("in")];
    for n in [1u32, 3, 7] {
        for i in 0..200 {
            let path = PathBuf::from(format!("in/f{i}"));
            let owners = (0..n)
                .filter(|&s| Shard::new(s, n).unwrap().owns(&roots, &path))
                .count();
            assert_eq!(owners, 1, "{} of {n}", path.display());
        }
    }
}
