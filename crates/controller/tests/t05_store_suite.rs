//! openraft's storage conformance suite run against the sled log store and the metadata state
//! machine.

use openraft::testing::{StoreBuilder, Suite};
use rivulet_controller::raft::log_store::SledLogStore;
use rivulet_controller::raft::state_machine::MetadataStateMachine;
use rivulet_controller::raft::{StorageError, TypeConfig};

struct SledBuilder;

impl StoreBuilder<TypeConfig, SledLogStore, MetadataStateMachine, tempfile::TempDir>
    for SledBuilder
{
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, SledLogStore, MetadataStateMachine), StorageError> {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = sled::Config::new()
            .path(dir.path())
            .open()
            .expect("sled opens");
        let log = SledLogStore::open(&db).expect("trees open");
        let sm = MetadataStateMachine::open(&db, "suite")?;
        Ok((dir, log, sm))
    }
}

#[test]
fn sled_store_passes_the_openraft_suite() {
    Suite::test_all(SledBuilder).expect("suite passes");
}
