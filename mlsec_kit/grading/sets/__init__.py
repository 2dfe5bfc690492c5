"""The exercise sets the package ships: exercise id -> the module that declares its checks.

Each module creates one :class:`~mlsec_kit.grading.core.ExerciseSet` when imported; the student
notebook is ``exercises/<id>.ipynb``, generated from ``exercises/source/<id>.ipynb``.
"""
SETS: dict[str, str] = {
    "01_threat_models": "mlsec_kit.grading.sets.ch01",
    "02_ml_basics": "mlsec_kit.grading.sets.ch02",
    "03_evasion_whitebox": "mlsec_kit.grading.sets.ch03",
    "04_evasion_blackbox": "mlsec_kit.grading.sets.ch04",
    "05_evasion_defenses": "mlsec_kit.grading.sets.ch05",
    "06_poisoning": "mlsec_kit.grading.sets.ch06",
    "07_backdoors": "mlsec_kit.grading.sets.ch07",
    "08_membership_inference": "mlsec_kit.grading.sets.ch08",
    "09_model_attacks": "mlsec_kit.grading.sets.ch09",
    "10_differential_privacy": "mlsec_kit.grading.sets.ch10",
    "11_dp_sgd": "mlsec_kit.grading.sets.ch11",
    "12_homomorphic_encryption": "mlsec_kit.grading.sets.ch12",
    "13_secure_computation": "mlsec_kit.grading.sets.ch13",
    "14_language_models": "mlsec_kit.grading.sets.ch14",
    "15_supply_chain": "mlsec_kit.grading.sets.ch15",
}
