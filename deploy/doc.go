// Package deploy holds no code: its tests check the deployment files beside
// it (kubernetes/*.yaml, airflow/*.yaml). It is a module of its own so that
// the Kubernetes API types the tests decode into stay out of git-sync's
// dependencies.
package deploy
