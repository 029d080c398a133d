package pecreds

// Version is the plugin's semantic version, with a leading v. The backend reports it to Vault as
// its running version; scripts/dev.sh and the tests register the plugin under it.
const Version = "v0.2.0"

// versionBuild is empty in every build but the upgrade test's, which links in another version
// (-ldflags -X, tests/upgrade_test.go) so that one Vault holds the plugin under two versions and
// a mount moves between them. Nothing at run time can change it.
var versionBuild string

// runningVersion is the version the backend reports: Version, unless the build linked in another.
func runningVersion() string {
	if versionBuild != "" {
		return versionBuild
	}
	return Version
}
