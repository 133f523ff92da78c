//! Wake-up signals of work, to this store's receivers and to other instances'.

use super::support::*;

/// A wake-up receiver taken beforehand hears of runs created, sent an event, and released
/// claimable.
pub(super) async fn wakeups_signal_work(store: DynStore) -> Result<()> {
    let mut rx = store.wakeups();
    create(&*store, "created", &flow()).await?;
    expect_wakeup(&mut rx, "created", "created").await?;

    let lease = create_owned(&*store, "worked", &flow(), "worker-a").await?;
    expect_wakeup(&mut rx, "worked", "created owned").await?;
    commit(&*store, &lease, release(true, None)).await?;
    send(&*store, "worked", "m1", event("m1")).await?;
    expect_wakeup(&mut rx, "worked", "sent an event while waiting").await?;

    let claim = claim_run(&*store, "worker-a", "worked", &options(&[flow()])).await?;
    send(&*store, "worked", "m2", event("m2")).await?;
    expect_wakeup(&mut rx, "worked", "sent an event while owned").await?;

    commit(&*store, &claim.lease, release(false, None)).await?;
    expect_wakeup(&mut rx, "worked", "released claimable").await?;

    // A second receiver hears too.
    let mut second = store.wakeups();
    send(&*store, "created", "m1", event("m1")).await?;
    expect_wakeup(&mut rx, "created", "sent an event").await?;
    expect_wakeup(&mut second, "created", "sent an event, second receiver").await?;
    Ok(())
}

/// Wake-ups reach every store instance on the same data: across processes for Postgres.
pub(super) async fn wakeups_across_instances(setup: Setup) -> Result<()> {
    if !setup.wakeups_cross_instances() {
        println!("skipped: this backend's wake-ups are in-process");
        return Ok(());
    }
    let other = setup.open_again().await?;
    let mut rx = other.wakeups();
    create(&*setup.store(), "created", &flow()).await?;
    expect_wakeup(&mut rx, "created", "created by another instance").await?;
    let lease = create_owned(&*setup.store(), "sent", &flow(), "worker-a").await?;
    // The creation's wake-up first: the next ones must come from the send and the release.
    expect_wakeup(&mut rx, "sent", "created owned by another instance").await?;
    commit(&*setup.store(), &lease, release(true, None)).await?;
    send(&*setup.store(), "sent", "m1", event("m1")).await?;
    expect_wakeup(&mut rx, "sent", "sent an event by another instance").await?;
    let claim = claim_run(&*setup.store(), "worker-a", "sent", &options(&[flow()])).await?;
    commit(&*setup.store(), &claim.lease, release(false, None)).await?;
    expect_wakeup(&mut rx, "sent", "released claimable by another instance").await?;
    Ok(())
}
