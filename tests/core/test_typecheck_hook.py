def test_project_packages_load_through_the_jaxtyping_hook():
    """The tests must run the real packages (not tests/<name> folders) with beartype checking switched on."""
    import physlm.tasks.cfg.grammar as grammar_module
    import physlm.training

    assert physlm.training.__file__.endswith("training/__init__.py")
    assert "Jaxtyping" in type(grammar_module.__loader__).__name__
